"""The text example's datasets and collators: tokenising per step (naive) or once (fixed).

Naive: :class:`Documents` hands out raw strings and :class:`TokenizingCollator` calls the
tokenizer on the whole batch every step. Truncation to ``block_size`` happens after a fast
tokenizer has encoded each document to its end, so a step pays for every character of
every document, every epoch -- the cost the Trainer's docs warn about and users meet.

Fixed: :class:`TokenizedDocuments` encodes every document once, up front, and keeps its
first ``block_size`` tokens; :class:`PaddingCollator` only pads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from collections.abc import Sequence

    from transformers import PreTrainedTokenizerFast

__all__ = ["Documents", "PaddingCollator", "TokenizedDocuments", "TokenizingCollator"]

IGNORE = -100  # the label the loss skips: padding


class Documents(Dataset[str]):
    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> str:
        return self.texts[index]


class TokenizingCollator:
    """Raw texts to ``input_ids``, ``attention_mask`` and ``labels``, each ``(B, block_size)``."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, *, block_size: int) -> None:
        self.tokenizer = tokenizer
        self.block_size = block_size

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.block_size,
            padding="max_length",
            return_tensors="pt",
        )
        return _with_labels(encoded["input_ids"], encoded["attention_mask"])


class TokenizedDocuments(Dataset[list[int]]):
    """Each document's first ``block_size`` token ids, encoded once at construction."""

    def __init__(
        self, texts: Sequence[str], tokenizer: PreTrainedTokenizerFast, *, block_size: int
    ) -> None:
        encoded = tokenizer(list(texts), truncation=True, max_length=block_size)
        self.ids: list[list[int]] = [list(ids) for ids in encoded["input_ids"]]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> list[int]:
        return self.ids[index]


class PaddingCollator:
    """Token id lists, padded to ``block_size``: the same tensors as :class:`TokenizingCollator`."""

    def __init__(self, *, pad_id: int, block_size: int) -> None:
        self.pad_id = pad_id
        self.block_size = block_size

    def __call__(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        ids = torch.full((len(rows), self.block_size), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), self.block_size), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return _with_labels(ids, mask)


def _with_labels(ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    labels = ids.masked_fill(mask == 0, IGNORE)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
