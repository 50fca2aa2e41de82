"""Calibration targets for the digits example (``trainperf calibrate TARGET``).

``loader``: the training digits, in memory, batch size 64. ``end_to_end``: the same
with the CNN's training step (forward, cross-entropy, backward, Adam step).
"""

from __future__ import annotations

__all__ = ["end_to_end", "loader"]


def loader() -> dict[str, object]:
    from trainperf.examples.digits.config import DataConfig
    from trainperf.examples.digits.data import digits_tensors

    config = DataConfig()
    train, _ = digits_tensors(config.test_fraction, config.seed)
    return {"dataset": train, "batch_size": config.batch_size}


def end_to_end() -> dict[str, object]:
    import torch

    from trainperf.examples.digits.config import ModelSchema
    from trainperf.examples.digits.model import DigitsCNN

    target = loader()
    schema = ModelSchema()
    torch.manual_seed(0)
    model = DigitsCNN(channels=schema.channels, hidden=schema.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=schema.lr)

    def step(batch: object) -> None:
        pair: tuple[torch.Tensor, torch.Tensor] = batch  # type: ignore[assignment]  # this loader's
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(pair[0]), pair[1])
        loss.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
        optimizer.step()

    target["train_step"] = step
    return target
