"""Train the digits example: ``python -m trainperf.examples.digits.train [overrides]``.

Like the OCR entry point, only Hydra loads before the configuration is validated::

    python -m trainperf.examples.digits.train                 # Lightning, num_workers=0
    python -m trainperf.examples.digits.train loop=manual     # legacy loop, 4 workers
    python -m trainperf.examples.digits.train trainer.max_steps=5
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import trainperf
from trainperf.errors import UsageError
from trainperf.examples.digits.config import DigitsConfig, register, validate

register()


# An absolute path: Hydra resolves a relative one against the module that *runs* main,
# which differs for the eager twin and under `trainperf run`.
@hydra.main(
    version_base="1.3", config_path=str(Path(__file__).parent / "conf"), config_name="config"
)
def main(cfg: DictConfig) -> None:
    config = OmegaConf.to_object(cfg)
    if not isinstance(config, DigitsConfig):
        raise TypeError(f"expected a DigitsConfig, got {type(config).__name__}")
    try:
        validate(config)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    trainperf.mark("config_validated")

    from trainperf.examples.digits.fit import fit  # torch and Lightning load here

    accuracy = fit(config)
    print(f"digits: test accuracy={accuracy:.4f} (loop={config.loop.name})")


if __name__ == "__main__":
    main()
