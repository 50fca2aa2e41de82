"""Write the key snapshots ``tests/schema/<kind>.json`` from what trainperf writes now.

    python tests/schema/regenerate.py               # every kind
    python tests/schema/regenerate.py run doctor    # only these

Run it after bumping a version in ``src/trainperf/_schema.py`` (``tests/test_schema.py``
says which). A kind whose output does not carry its constant's ``schema_version`` is not
written: stamp it first (``<CONSTANT>.stamp(data)``), so that a snapshot never records
an unversioned output.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for _schema_kinds

from _schema_kinds import KINDS, Workshop


def main(names: list[str]) -> int:
    known = {kind.name for kind in KINDS}
    unknown = sorted(set(names) - known)
    if unknown:
        print(f"unknown kind {', '.join(unknown)}; the kinds: {', '.join(sorted(known))}")
        return 2
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        shop = Workshop(Path(scratch))
        for kind in KINDS:
            if names and kind.name not in names:
                continue
            instance = kind.produce(shop)
            found = kind.version(instance)
            if found != kind.schema.version:
                print(
                    f"{kind.name}: not written: it carries schema_version {found!r}, "
                    f"{kind.constant} is {kind.schema.version}; stamp it with "
                    f"{kind.constant}.stamp() first",
                    file=sys.stderr,
                )
                failed += 1
                continue
            keys = kind.keys(instance)
            body = {"schema_version": kind.schema.version, "keys": keys}
            kind.snapshot.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
            print(f"{kind.snapshot}: {kind.constant} {kind.schema.version}, {len(keys)} keys")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
