"""``trainperf fix loader``: calibrated DataLoader settings, written into the call that
builds the training loader, as a checked patch.

    located = locate(Path("train.py"))         # the file's DataLoader(...) calls, one picked
    calibrated = from_run(folder)              # or from_store(path, environment=...)
    fix = plan(located, calibrated)            # the edits and the diff; nothing written
    checked = remeasure(fix, dataset)          # as written against the original, in turns
    why = not_shown_faster(fix, checked)       # None: shown faster (or never measured)
    write_fix(fix)                             # FILE.orig keeps the original

The call is the training loader: of several ``DataLoader(...)`` (or Hugging Face
``TrainingArguments(...)``) calls, the first whose assigned name, dataset or enclosing
function says *train*, else the first, unless ``line`` picks one. Its ``num_workers``,
``persistent_workers``, ``prefetch_factor`` and ``pin_memory`` (the ``dataloader_*``
fields of ``TrainingArguments``) are written as literals: a literal is replaced, a
missing argument added unless its default is the value (``prefetch_factor=2`` with
workers), ``prefetch_factor`` and ``persistent_workers=True`` only with workers
(DataLoader raises otherwise). A value read from a configuration is not
overwritten but traced to where it is set: an ``argparse`` default or a constant of the
same file is rewritten, a key of a Hydra/OmegaConf YAML file near it is edited on its
line (and its override printed), a function parameter is pointed at. Each changed line
carries a comment with the calibration's gain, its interval and the date it was
measured; LibCST keeps every other byte of the file.

Every patch is checked before it is shown: the rewritten file must parse and compile,
and :func:`remeasure` times the settings as written against the file's original ones,
interleaved side by side (:func:`~trainperf.calibration.verify.measure_side_by_side`).
Running the fix again on a fixed file changes nothing.

The modules follow these steps: :mod:`.sources` (where the settings come from),
:mod:`.calls` (finding the call), :mod:`.planner` (the edits, with :mod:`.yaml_keys`
for Hydra/OmegaConf files and :mod:`.rewrite` to apply them), :mod:`.verify` (the
re-measure, and writing); :mod:`.values` holds what they return. None of them imports
LibCST or torch until it is used.
"""

from __future__ import annotations

from trainperf.fix.loader.calls import Located, locate
from trainperf.fix.loader.planner import plan
from trainperf.fix.loader.sources import from_run, from_store
from trainperf.fix.loader.values import (
    Calibrated,
    Change,
    FileEdit,
    Gain,
    LoaderFix,
    Pointer,
    Remeasured,
)
from trainperf.fix.loader.verify import (
    VERIFY_BATCHES,
    VERIFY_ROUNDS,
    not_shown_faster,
    remeasure,
    write_fix,
)

__all__ = [
    "VERIFY_BATCHES",
    "VERIFY_ROUNDS",
    "Calibrated",
    "Change",
    "FileEdit",
    "Gain",
    "LoaderFix",
    "Located",
    "Pointer",
    "Remeasured",
    "from_run",
    "from_store",
    "locate",
    "not_shown_faster",
    "plan",
    "remeasure",
    "write_fix",
]
