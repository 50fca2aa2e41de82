"""Train the OCR example: ``python -m trainperf.examples.ocr.train [hydra overrides]``.

Only Hydra is imported before the configuration is validated; torch and Lightning
load afterwards (the lazy-import fix: a typo in an override fails in a fraction of a
second instead of after the whole ML stack has loaded). Examples::

    python -m trainperf.examples.ocr.train trainer.max_steps=3
    python -m trainperf.examples.ocr.train data.num_workers=2 data.fast_maps=true
    python -m trainperf.examples.ocr.train trainer.max_epochs=abc   # fails fast
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import hydra

from trainperf.examples._entry import validated
from trainperf.examples.ocr.config import OCRConfig, register, validate

if TYPE_CHECKING:
    from omegaconf import DictConfig

register()


# An absolute path: Hydra resolves a relative one against the module that *runs* main,
# which differs for the eager twin and under `trainperf run`.
@hydra.main(
    version_base="1.3", config_path=str(Path(__file__).parent / "conf"), config_name="config"
)
def main(cfg: DictConfig) -> None:
    config = validated(cfg, OCRConfig, validate)

    from trainperf.examples.ocr.fit import fit  # torch and Lightning load here

    score = fit(config)
    print(
        f"ocr: hmean={score.hmean:.3f} precision={score.precision:.3f} "
        f"recall={score.recall:.3f} ({score.matched} of {score.expected} words found, "
        f"{score.predicted} predicted)"
    )


if __name__ == "__main__":
    main()
