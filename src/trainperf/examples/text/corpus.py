"""Generated documents: seeded, English-like, long enough that tokenising them costs.

A document is a few hundred sentences drawn from small word lists; the same seed gives
the same documents on every machine, so runs and their caches compare.
"""

from __future__ import annotations

import random

__all__ = ["documents"]

_SUBJECTS = (
    "the model",
    "a loader",
    "the optimizer",
    "every worker",
    "the scheduler",
    "a rank",
    "the tokenizer",
    "each batch",
    "the collator",
    "a gradient",
    "the trainer",
    "one epoch",
)
_VERBS = (
    "waits for",
    "reads",
    "updates",
    "prefetches",
    "copies",
    "shuffles",
    "measures",
    "tokenises",
    "caches",
    "averages",
    "pads",
    "skips",
    "logs",
    "restores",
)
_OBJECTS = (
    "the next batch",
    "its weights",
    "a shared tensor",
    "the learning rate",
    "every sample",
    "the padded sequence",
    "a pinned buffer",
    "the validation set",
    "its own state",
    "the attention mask",
    "a long document",
    "the checkpoint",
    "twelve tokens",
)
_TAILS = (
    "before the step ends",
    "while the GPU idles",
    "in another process",
    "once per epoch",
    "at every step",
    "without a copy",
    "after the warm-up",
    "on the first rank",
    "",
)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_TAILS)]
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", "!", "?"))


def documents(count: int, *, sentences: int, seed: int = 0) -> list[str]:
    """``count`` documents of ``sentences`` sentences each (about 45 characters a sentence).

    Raises ``ValueError`` when ``count`` or ``sentences`` is below 1.
    """
    if count < 1 or sentences < 1:
        raise ValueError(f"count and sentences must be >= 1, got {count} and {sentences}")
    rng = random.Random(seed)  # noqa: S311 - reproducible text, not secrets
    return [" ".join(_sentence(rng) for _ in range(sentences)) for _ in range(count)]
