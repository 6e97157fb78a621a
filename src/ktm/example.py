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
        prompt_ids: the prompt's token ids when a transform chose them (a token-budget
            baseline's kept tokens); the text then stays for reports only.
    """

    prompt: str
    answer: str
    suffix: str | None = None
    prompt_ids: tuple[int, ...] | None = None

    @property
    def model_prompt(self) -> str | tuple[int, ...]:
        """What the model reads as the prompt: its token ids if given, else the text."""
        return self.prompt_ids if self.prompt_ids is not None else self.prompt
