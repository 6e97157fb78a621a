"""The unit of training data every task produces and the trainer reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One prompt → answer pair.

    Attributes:
        prompt: text to compress.
        answer: target text (the loss reads only its tokens).
        suffix: text kept uncompressed after the compressed prompt (e.g. the question).
    """

    prompt: str
    answer: str
    suffix: str | None = None
