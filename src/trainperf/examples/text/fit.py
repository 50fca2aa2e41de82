"""The text example's training: a GPT-2 built from a configuration, the Hugging Face Trainer."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from trainperf.examples.text.corpus import documents
from trainperf.examples.text.data import (
    Documents,
    PaddingCollator,
    TokenizedDocuments,
    TokenizingCollator,
)
from trainperf.examples.text.tokenizer import train_tokenizer

if TYPE_CHECKING:
    from trainperf.examples.text.config import TextConfig

__all__ = ["EVAL_DOCUMENTS", "fit"]

EVAL_DOCUMENTS = 64
TOKENIZER_DOCUMENTS = 64  # the tokenizer learns from these; more changes little


def fit(config: TextConfig) -> float:
    """Train, evaluate after every epoch, and return the final evaluation loss."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    texts = documents(
        config.documents + EVAL_DOCUMENTS, sentences=config.sentences, seed=config.seed
    )
    tokenizer = train_tokenizer(texts[:TOKENIZER_DOCUMENTS], vocab_size=config.vocab_size)
    tokenizer.model_max_length = config.block_size
    train_texts, eval_texts = texts[: config.documents], texts[config.documents :]
    pad_id = int(tokenizer.pad_token_id)
    collator: TokenizingCollator | PaddingCollator
    if config.tokenize == "collator":
        train: object = Documents(train_texts)
        evaluation: object = Documents(eval_texts)
        collator = TokenizingCollator(tokenizer, block_size=config.block_size)
    else:
        train = TokenizedDocuments(train_texts, tokenizer, block_size=config.block_size)
        evaluation = TokenizedDocuments(eval_texts, tokenizer, block_size=config.block_size)
        collator = PaddingCollator(pad_id=pad_id, block_size=config.block_size)

    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=config.block_size,
            n_embd=config.hidden,
            n_layer=config.layers,
            n_head=2,
            pad_token_id=pad_id,
            eos_token_id=int(tokenizer.eos_token_id),
            bos_token_id=int(tokenizer.eos_token_id),
        )
    )
    with tempfile.TemporaryDirectory(prefix="trainperf-text-") as output:
        args = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=config.per_device_train_batch_size,
            per_device_eval_batch_size=config.per_device_eval_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            num_train_epochs=config.num_train_epochs,
            max_steps=config.max_steps,
            learning_rate=config.learning_rate,
            dataloader_num_workers=config.dataloader_num_workers,
            dataloader_prefetch_factor=config.dataloader_prefetch_factor,
            dataloader_persistent_workers=config.dataloader_persistent_workers,
            dataloader_pin_memory=config.dataloader_pin_memory,
            logging_steps=config.logging_steps,
            eval_strategy="epoch",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,  # the naive dataset hands out strings
            # Several processes on a machine without a GPU (accelerate launch, torchrun)
            # train as gloo DDP ranks only when the Trainer is told to use the CPU.
            use_cpu=not torch.cuda.is_available(),
            seed=config.seed,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            data_collator=collator,
        )
        trainer.train()
        metrics = trainer.evaluate()
    return float(metrics["eval_loss"])
