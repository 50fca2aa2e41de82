"""Train the digits example: ``python -m trainperf.examples.digits.train [overrides]``.

Like the OCR entry point, only Hydra loads before the configuration is validated::

    python -m trainperf.examples.digits.train                 # Lightning, num_workers=0
    python -m trainperf.examples.digits.train loop=manual     # legacy loop, 4 workers
    python -m trainperf.examples.digits.train trainer.max_steps=5
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import hydra

from trainperf.examples._entry import validated
from trainperf.examples.digits.config import DigitsConfig, register, validate

if TYPE_CHECKING:
    from omegaconf import DictConfig

register()


# An absolute path: Hydra resolves a relative one against the module that *runs* main,
# which differs for the eager twin and under `trainperf run`.
@hydra.main(
    version_base="1.3", config_path=str(Path(__file__).parent / "conf"), config_name="config"
)
def main(cfg: DictConfig) -> None:
    config = validated(cfg, DigitsConfig, validate)

    from trainperf.examples.digits.fit import fit  # torch and Lightning load here

    accuracy = fit(config)
    print(f"digits: test accuracy={accuracy:.4f} (loop={config.loop.name})")


if __name__ == "__main__":
    main()
