"""One cache entry per file: a header, then raw arrays, checksummed. No pickle.

Layout (little-endian)::

    b"TPCACHE1"             8 bytes, the format
    header length           uint32
    payload length          uint64
    CRC-32 of header+payload uint32
    header                  JSON: the value's structure, each array's dtype, shape,
                            offset and codec, the small scalars, the key's components
    padding                 to a multiple of 64
    payload                 the arrays, each starting at a multiple of 64 bytes

A reader checks the magic and that the file is exactly as long as the header says
(a torn file never passes), and, when asked, the CRC (a flipped byte never passes).
Arrays are read through a private memory map: views of the OS page cache (shared by
every process reading the same entry), writable by the reader without touching the
file; a codec's decoding makes one copy.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from typing import TYPE_CHECKING, BinaryIO

from trainperf.cache.codec import codec_from_json
from trainperf.errors import RecordError, UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np
    from numpy.typing import NDArray

    from trainperf._json import Json, JsonObject
    from trainperf.cache.codec import Codec

__all__ = ["ALIGN", "MAGIC", "CorruptEntry", "Value", "read_entry", "write_entry"]

MAGIC = b"TPCACHE1"
_FIXED = struct.Struct("<8sIQI")
ALIGN = 64
Value = dict[str, object] | tuple[object, ...]
_SCALARS = (str, int, float, bool, type(None))


class CorruptEntry(RecordError):
    """An entry that must not be returned: torn, truncated, or with flipped bytes."""


def _pad(n: int) -> int:
    return (-n) % ALIGN


def _split(
    value: object, codecs: Mapping[str, Codec]
) -> tuple[JsonObject, list[NDArray[np.generic]]]:
    """The header's description of ``value`` and the arrays to store, in order."""
    import numpy as np

    if isinstance(value, dict):
        structure, items = "dict", list(value.items())
    elif isinstance(value, tuple | list):
        structure, items = "tuple", [(str(i), v) for i, v in enumerate(value)]
    else:
        raise UsageError(
            f"a cached value must be a dict or a tuple of arrays and scalars, got "
            f"{type(value).__name__}"
        )
    fields: list[Json] = []
    arrays: list[NDArray[np.generic]] = []
    for name, item in items:
        if not isinstance(name, str):
            raise UsageError(f"cached dict keys must be strings, got {name!r}")
        if isinstance(item, _SCALARS):
            if isinstance(item, float) and not np.isfinite(item):
                item = repr(item)  # JSON has no nan/inf: kept as text, restored below
                fields.append({"name": name, "kind": "float-text", "value": item})
                continue
            fields.append({"name": name, "kind": "scalar", "value": item})
            continue
        if type(item).__module__.startswith("torch"):
            item = item.detach().cpu().numpy()
        if not isinstance(item, np.ndarray):
            raise UsageError(
                f"cannot cache field {name!r} of type {type(item).__name__}: arrays, tensors "
                f"and str/int/float/bool/None scalars only (no pickle)"
            )
        if item.dtype.hasobject:
            raise UsageError(f"cannot cache field {name!r}: an array of Python objects")
        array = np.ascontiguousarray(item)
        described: JsonObject = {
            "name": name,
            "kind": "array",
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
        codec = codecs.get(name)
        if codec is not None:
            stored, meta = codec.encode(array)
            described.update(codec=codec.name, codec_meta=meta, stored_dtype=stored.dtype.str)
            array = np.ascontiguousarray(stored)
        described["nbytes"] = array.nbytes
        fields.append(described)
        arrays.append(array)
    return {"structure": structure, "fields": fields}, arrays


def write_entry(path: Path, value: object, extra: JsonObject, codecs: Mapping[str, Codec]) -> int:
    """Write ``value`` to ``path`` (a temporary file: the caller publishes it) and fsync;
    return the bytes written."""
    import numpy as np

    header, arrays = _split(value, codecs)
    offset = 0
    for field in header["fields"]:  # type: ignore[union-attr]
        if isinstance(field, dict) and field.get("kind") == "array":
            field["offset"] = offset
            nbytes = field["nbytes"]
            assert isinstance(nbytes, int)
            offset += nbytes + _pad(nbytes)
    header.update(extra)
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * _pad(_FIXED.size + len(body))
    payload_length = offset
    crc = zlib.crc32(body)
    chunks: list[bytes | memoryview] = []
    for array in arrays:
        data = array.reshape(-1).view(np.uint8).data
        crc = zlib.crc32(data, crc)
        chunks.append(data)
        gap = _pad(array.nbytes)
        if gap:
            zeros = bytes(gap)
            crc = zlib.crc32(zeros, crc)
            chunks.append(zeros)
    with path.open("wb") as out:
        out.write(_FIXED.pack(MAGIC, len(body), payload_length, crc))
        out.write(body)
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return _FIXED.size + len(body) + payload_length


def read_header(path: Path) -> tuple[JsonObject, int, int, int]:
    """The header, its length, the payload length and the CRC, checking the length."""
    with path.open("rb") as handle:
        return _header(handle, path)


def _header(handle: BinaryIO, path: Path) -> tuple[JsonObject, int, int, int]:
    fixed = handle.read(_FIXED.size)
    if len(fixed) < _FIXED.size:
        raise CorruptEntry(f"{path.name}: shorter than a header")
    magic, header_length, payload_length, crc = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise CorruptEntry(f"{path.name}: not a trainperf cache entry")
    size = os.fstat(handle.fileno()).st_size
    if size != _FIXED.size + header_length + payload_length:
        raise CorruptEntry(
            f"{path.name}: {size} bytes where the header says "
            f"{_FIXED.size + header_length + payload_length} (torn or truncated)"
        )
    try:
        header = json.loads(handle.read(header_length))
    except ValueError:
        raise CorruptEntry(f"{path.name}: unreadable header") from None
    if not isinstance(header, dict):
        raise CorruptEntry(f"{path.name}: unreadable header")
    return header, header_length, payload_length, crc


def read_entry(path: Path, *, check: bool) -> tuple[JsonObject, Value]:
    """The header and the value; raises :class:`CorruptEntry` rather than return a bad one."""
    import numpy as np

    with path.open("rb") as handle:  # one open: the header, then the map of the same file
        header, header_length, payload_length, crc = _header(handle, path)
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    start = _FIXED.size + header_length
    if check and zlib.crc32(memoryview(mapped)[_FIXED.size :]) != crc:
        raise CorruptEntry(f"{path.name}: checksum mismatch (flipped bytes)")
    fields = header.get("fields")
    if not isinstance(fields, list):
        raise CorruptEntry(f"{path.name}: no fields")
    out: list[tuple[str, object]] = []
    try:
        for field in fields:
            if not isinstance(field, dict):
                raise CorruptEntry(f"{path.name}: a malformed field")
            name, kind = str(field["name"]), field["kind"]
            if kind == "scalar":
                out.append((name, field["value"]))
                continue
            if kind == "float-text":
                out.append((name, float(str(field["value"]))))
                continue
            shape = tuple(int(x) for x in field["shape"])  # type: ignore[union-attr, arg-type]
            offset = start + int(field["offset"])  # type: ignore[arg-type]
            nbytes = int(field["nbytes"])  # type: ignore[arg-type]
            if offset + nbytes > start + payload_length:
                raise CorruptEntry(f"{path.name}: field {name!r} beyond the payload")
            codec = field.get("codec")
            stored_dtype = np.dtype(str(field.get("stored_dtype", field["dtype"])))
            array = np.frombuffer(
                mapped, dtype=stored_dtype, count=nbytes // stored_dtype.itemsize, offset=offset
            )
            if codec is None:
                out.append((name, array.reshape(shape)))
            else:
                meta = field.get("codec_meta")
                decoded = codec_from_json(str(codec)).decode(
                    array, shape, meta if isinstance(meta, dict) else {}
                )
                out.append((name, decoded))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptEntry(f"{path.name}: malformed header ({exc})") from None
    if header.get("structure") == "tuple":
        return header, tuple(v for _, v in out)
    return header, dict(out)
