"""A tiny real Hugging Face Trainer: a one-layer GPT-2 on token sequences of known length,
whose collator waits on a timer (a planted input bottleneck that holds on a busy machine)."""

from __future__ import annotations

import threading

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

VOCAB = 64
LENGTH = 16  # positions a row; the last PAD of them are padding
PAD = 4  # padding positions per row: a row holds LENGTH - PAD tokens


class Rows(torch.utils.data.Dataset):
    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> list[int]:
        return [(index + i) % (VOCAB - 1) + 1 for i in range(LENGTH - PAD)]


class WaitingCollator:
    """Pads rows to LENGTH, after waiting ``wait_s`` seconds on a timer."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s

    def __call__(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        if self.wait_s:
            threading.Event().wait(self.wait_s)
        ids = torch.zeros((len(rows), LENGTH), dtype=torch.long)
        mask = torch.zeros((len(rows), LENGTH), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100),
        }


def tiny_trainer(
    output: str,
    *,
    rows: int = 48,
    batch_size: int = 4,
    accumulation: int = 1,
    epochs: float = 1,
    wait_s: float = 0.0,
    evaluate: bool = True,
    callbacks: list | None = None,
    seed: int = 0,
    scheduler: str = "linear",
) -> Trainer:
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=1, n_head=2)
    )
    args = TrainingArguments(
        output_dir=output,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=epochs,
        learning_rate=1e-3,
        lr_scheduler_type=scheduler,
        logging_steps=1000,
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        use_cpu=True,
        seed=seed,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=Rows(rows),
        eval_dataset=Rows(rows // 4) if evaluate else None,
        data_collator=WaitingCollator(wait_s),
        callbacks=callbacks,
    )
