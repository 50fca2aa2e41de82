"""Optional codecs for cached arrays, with their documented error.

* ``BITS``: boolean masks (or 0/1 arrays of any dtype) packed 8 to a byte with
  ``numpy.packbits``: exact, 1/32 of float32's size. Values other than 0 and 1 are
  refused (the encoding would lose them).
* ``Quantized(lo, hi)`` (``U8`` is ``Quantized(0, 1)``): floats in ``[lo, hi]`` stored as
  uint8; decoding returns float32 with an absolute error of at most
  ``(hi - lo) / 510``; values outside the range are clipped to it.

A codec turns an array into the stored array and a small JSON description, and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trainperf.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from trainperf._json import JsonObject

__all__ = ["BITS", "U8", "BitPacked", "Codec", "Quantized", "codec_from_json"]


class Codec(Protocol):
    @property
    def name(self) -> str: ...

    def encode(self, array: NDArray[np.generic]) -> tuple[NDArray[np.generic], JsonObject]: ...

    def decode(
        self, stored: NDArray[np.generic], shape: tuple[int, ...], meta: JsonObject
    ) -> NDArray[np.generic]: ...


@dataclass(frozen=True)
class BitPacked:
    name: str = "bits"

    def encode(self, array: NDArray[np.generic]) -> tuple[NDArray[np.generic], JsonObject]:
        import numpy as np

        flat = array.reshape(-1)
        if array.dtype != np.bool_ and not np.isin(flat, (0, 1)).all():
            raise UsageError(
                "the bits codec stores 0/1 masks only; this array has other values (use "
                "Quantized for maps)"
            )
        return np.packbits(flat.astype(np.bool_)), {"dtype": array.dtype.str}

    def decode(
        self, stored: NDArray[np.generic], shape: tuple[int, ...], meta: JsonObject
    ) -> NDArray[np.generic]:
        import math

        import numpy as np

        bits = np.unpackbits(stored.view(np.uint8), count=math.prod(shape))
        return bits.astype(np.dtype(str(meta["dtype"]))).reshape(shape)


@dataclass(frozen=True)
class Quantized:
    lo: float = 0.0
    hi: float = 1.0
    name: str = "u8"

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise UsageError(f"Quantized needs hi > lo, got lo={self.lo} hi={self.hi}")

    def encode(self, array: NDArray[np.generic]) -> tuple[NDArray[np.generic], JsonObject]:
        import numpy as np

        scaled = (np.asarray(array, dtype=np.float32) - self.lo) * (255.0 / (self.hi - self.lo))
        stored = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return stored, {"lo": self.lo, "hi": self.hi}

    def decode(
        self, stored: NDArray[np.generic], shape: tuple[int, ...], meta: JsonObject
    ) -> NDArray[np.generic]:
        import numpy as np

        lo, hi = meta.get("lo"), meta.get("hi")
        if not isinstance(lo, int | float) or not isinstance(hi, int | float):
            from trainperf.errors import RecordError

            raise RecordError("a quantized array without its range")
        out: NDArray[np.float32] = stored.astype(np.float32).reshape(shape)
        out *= np.float32((hi - lo) / 255.0)
        if lo:
            out += np.float32(lo)
        return out


BITS = BitPacked()
U8 = Quantized(0.0, 1.0)


def codec_from_json(name: str) -> Codec:
    if name == "bits":
        return BITS
    if name == "u8":
        return U8  # lo/hi travel in each field's own description
    from trainperf.errors import RecordError

    raise RecordError(f"unknown codec {name!r} in a cache entry")
