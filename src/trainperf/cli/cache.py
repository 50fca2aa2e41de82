"""``trainperf cache info|verify|clear DIR``: look after a preprocessing cache folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainperf.cli import Command

if TYPE_CHECKING:
    import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("info", "verify", "clear"),
        help="info: entries, bytes, hits, time saved; verify: check every entry's length and "
        "checksum (exit 1 on a bad one); clear: remove every entry",
    )
    parser.add_argument("dir", metavar="DIR", help="the cache folder (a CachedDataset's cache_dir)")
    parser.add_argument(
        "--repair", action="store_true", help="verify: remove bad entries and stray temporaries"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainperf._schema import CACHE_CLEAR, CACHE_INFO, CACHE_VERIFY
    from trainperf.cache.dataset import clear_folder, folder_info, verify_folder
    from trainperf.cli._render import emit_json, human_bytes

    folder = Path(args.dir)
    if args.action == "info":
        info = folder_info(folder)
        if args.json:
            emit_json(CACHE_INFO.stamp(info))
        else:
            size = human_bytes(int(str(info["bytes"])))
            saved = float(str(info["time_saved_s"]))
            print(
                f"{folder}: {info['entries']} entries, {size}; {info['hits']} hits, "
                f"{info['misses']} misses, {saved:.1f} s of computation saved; "
                f"{info['orphans']} stray temporaries"
            )
        return 0
    if args.action == "verify":
        report = verify_folder(folder, repair=args.repair)
        if args.json:
            emit_json(CACHE_VERIFY.stamp(report.to_json()))
        else:
            for bad in report.bad:
                print(f"bad entry: {bad}" + (" (removed)" if args.repair else ""))
            print(
                f"{report.entries} entries checked, {len(report.bad)} bad, {report.orphans} stray "
                f"temporaries" + (" removed" if args.repair and report.orphans else "")
            )
        return 0 if report.ok else 1
    removed = clear_folder(folder)
    if args.json:
        emit_json(CACHE_CLEAR.stamp({"removed": removed, "path": str(folder)}))
    else:
        print(f"{folder}: {removed} entries removed")
    return 0


COMMAND = Command(configure, run)
