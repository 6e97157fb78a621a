"""Refuse (or skip and count) examples the model cannot hold in its context.

Without ``--max-prompt-tokens`` nothing cuts a long prompt, so a data row far beyond the
model's context would otherwise reach the model: positions past the limit are garbage
(RoPE extrapolates silently) or an index error deep in torch. An example needs
⌈prompt/K⌉ merged positions + its suffix + its answer + EOS; merging is what lets a long
prompt fit, so the check uses the run's K.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import KTMError
from ..packing import positions_read
from .base import LabeledExample
from .records import BadRows


@dataclass(frozen=True)
class ContextLimit:
    """The positions a model holds (``positions``) and the merging factor ``k``."""

    positions: int
    k: int

    def __post_init__(self) -> None:
        if self.positions < 1 or self.k < 1:
            raise KTMError(f"context limit needs positions >= 1 and k >= 1, got {self}")


def token_counts(tokenizer, texts: list[str], special: bool = False) -> list[int]:
    """Tokens of each text (with the tokenizer's special tokens if ``special``)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=special)["input_ids"]]


def positions_needed(
    tokenizer, examples: Sequence[LabeledExample], k: int
) -> list[tuple[int, int, int, int]]:
    """Per example (needed, prompt, suffix, answer) token counts: the prompt with the
    tokenizer's special tokens (as :meth:`KTMModel.encode_prompts` reads it), the suffix and
    answer without, + 1 for the EOS the answer is trained to end with."""
    prompts = token_counts(tokenizer, [e.prompt for e in examples], special=True)
    suffixes = token_counts(tokenizer, [e.suffix or "" for e in examples], special=False)
    answers = token_counts(tokenizer, [e.label for e in examples], special=False)
    return [
        (positions_read(p, s, k) + a + 1, p, s, a) for p, s, a in zip(prompts, suffixes, answers)
    ]


def fit_context(
    examples: Sequence[LabeledExample],
    tokenizer,
    limit: ContextLimit,
    skip: bool,
    bad: BadRows,
    split: str,
) -> list[LabeledExample]:
    """``examples`` that fit ``limit``; one that does not is a :class:`KTMError` naming its
    file and line (or its index in ``split``), or with ``skip`` is counted in ``bad``."""
    kept = []
    for i, (ex, (need, p, s, a)) in enumerate(
        zip(examples, positions_needed(tokenizer, examples, limit.k))
    ):
        if need <= limit.positions:
            kept.append(ex)
            continue
        where = ex.source or f"{split} example {i}"
        why = (
            f"the example needs {need} positions (⌈{p}/{limit.k}⌉ merged prompt + {s} suffix "
            f"+ {a} answer + EOS) but the model holds {limit.positions}"
        )
        if not skip:
            raise KTMError(
                f"{where}: {why}; cut long prompts with --max-prompt-tokens N, raise K, "
                f"or pass --skip-bad-rows to skip such rows"
            )
        bad.add(where, why)
    if not kept:
        raise KTMError(
            f"no {split} example fits the model's {limit.positions} positions at K = {limit.k}; "
            f"cut prompts with --max-prompt-tokens N"
        )
    return kept
