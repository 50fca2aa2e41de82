"""The "legacy" trainer: a hand-written loop with a tqdm bar updated on every batch.

Many projects start from such a loop. It is kept honest: the same model, data,
optimizer and number of steps as the Lightning trainer, so the two compare side by side.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F
from tqdm import tqdm

import trainperf
from trainperf.examples.digits.data import make_loaders
from trainperf.examples.digits.model import DigitsCNN

if TYPE_CHECKING:
    from trainperf.examples.digits.config import DigitsConfig

__all__ = ["train_manual"]


def train_manual(config: DigitsConfig) -> float:
    """Train, then return the test accuracy."""
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_loader, test_loader = make_loaders(config.data)
    model = DigitsCNN(channels=config.model.channels, hidden=config.model.hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.model.lr)
    max_steps = config.trainer.max_steps if config.trainer.max_steps > 0 else None
    steps = 0
    # max_epochs = -1 means "no epoch limit", as in Lightning (max_steps then stops).
    epochs = (
        itertools.count() if config.trainer.max_epochs < 0 else range(config.trainer.max_epochs)
    )
    for epoch in epochs:
        model.train()
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch}",
            leave=False,
            disable=not config.trainer.enable_progress_bar,
        )
        for images, labels in bar:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
            optimizer.step()
            steps += 1
            if steps == 1:
                trainperf.mark("first_step")
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if max_steps is not None and steps >= max_steps:
                break
        if max_steps is not None and steps >= max_steps:
            break
    return evaluate(model, test_loader, device)


def evaluate(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader[tuple[torch.Tensor, ...]],
    device: torch.device,
) -> float:
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for images, labels in loader:
            predicted = model(images.to(device)).argmax(dim=1).cpu()
            correct += int((predicted == labels).sum())
            seen += len(labels)
    return correct / max(seen, 1)
