"""The OCR entry point with every heavy import at the top: the "before" picture.

Behaves exactly like :mod:`trainperf.examples.ocr.train`, but torch, Lightning,
OpenCV and the model load before Hydra even reads the command line, so a config
typo costs the full import time. Kept for the start-up benchmarks and as a target
for ``trainperf imports`` / ``lint-imports``.
"""

from __future__ import annotations

import cv2  # noqa: F401
import lightning  # noqa: F401
import torch  # noqa: F401

from trainperf.examples.ocr.fit import fit  # noqa: F401
from trainperf.examples.ocr.train import main

if __name__ == "__main__":
    main()
