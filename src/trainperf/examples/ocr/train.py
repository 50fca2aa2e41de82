"""Train the OCR example: ``python -m trainperf.examples.ocr.train [hydra overrides]``.

Only Hydra is imported before the configuration is validated; torch and Lightning
load afterwards (the lazy-import fix: a typo in an override fails in a fraction of a
second instead of after the whole ML stack has loaded). Examples::

    python -m trainperf.examples.ocr.train trainer.max_steps=3
    python -m trainperf.examples.ocr.train data.num_workers=2 data.fast_maps=true
    python -m trainperf.examples.ocr.train trainer.max_epochs=abc   # fails fast
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import trainperf
from trainperf.errors import UsageError
from trainperf.examples.ocr.config import OCRConfig, register, validate

register()


# An absolute path: Hydra resolves a relative one against the module that *runs* main,
# which differs for the eager twin and under `trainperf run`.
@hydra.main(
    version_base="1.3", config_path=str(Path(__file__).parent / "conf"), config_name="config"
)
def main(cfg: DictConfig) -> None:
    config = OmegaConf.to_object(cfg)
    if not isinstance(config, OCRConfig):
        raise TypeError(f"expected an OCRConfig, got {type(config).__name__}")
    try:
        validate(config)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    trainperf.mark("config_validated")

    from trainperf.examples.ocr.fit import fit  # torch and Lightning load here

    score = fit(config)
    print(
        f"ocr: hmean={score.hmean:.3f} precision={score.precision:.3f} "
        f"recall={score.recall:.3f} ({score.matched} of {score.expected} words found, "
        f"{score.predicted} predicted)"
    )


if __name__ == "__main__":
    main()
