"""Train with the configured loop and return the test accuracy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainperf.examples.digits.config import DigitsConfig

__all__ = ["fit"]


def fit(config: DigitsConfig) -> float:
    if config.loop.name == "manual":
        from trainperf.examples.digits.manual_loop import train_manual

        return train_manual(config)
    return _fit_lightning(config)


def _fit_lightning(config: DigitsConfig) -> float:
    import lightning as L

    import trainperf
    from trainperf.examples.digits.data import make_loaders
    from trainperf.examples.digits.lightning_module import DigitsModule

    class MarkFirstStep(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            if trainer.global_step == 1:
                trainperf.mark("first_step")

    L.seed_everything(config.seed, verbose=False)
    train_loader, test_loader = make_loaders(config.data)
    module = DigitsModule(config.model)
    trainer = L.Trainer(
        max_epochs=config.trainer.max_epochs,
        max_steps=config.trainer.max_steps,
        accelerator=config.trainer.accelerator,
        devices=1,
        enable_progress_bar=config.trainer.enable_progress_bar,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        callbacks=[MarkFirstStep()],
    )
    trainer.fit(module, train_loader, test_loader)
    trainer.validate(module, test_loader, verbose=False)
    return module.accuracy
