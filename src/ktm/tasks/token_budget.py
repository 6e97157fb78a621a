"""Token-space baselines at the budget of K-token merging, as prompt transforms: each keeps
⌈T/K⌉ of a prompt's T tokens and hands the kept tokens to the model as its prompt.

- ``first``: the first ⌈T/K⌉ tokens (the end truncated);
- ``last``: the last ⌈T/K⌉ tokens (the start truncated);
- ``prune``: the ⌈T/K⌉ most informative tokens, in order, scored by their self-information
  −log p(t_i | t_<i) under the base model (Selective Context, Li et al. 2023, at token
  granularity; the first token has no context and is always kept).

A reduced prompt is read uncompressed (K = 1), so every baseline reads exactly as many prompt
positions as K-token merging does; the raw suffix is never reduced. The model knows nothing
of this: the transform runs on the examples before training and evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from ..config import REDUCTIONS
from ..errors import KTMError
from ..packing import merged_length
from ..token_scores import self_information  # noqa: F401  (re-exported for the baselines)
from .base import LabeledExample

Scores = Callable[[Sequence[Sequence[int]]], list[torch.Tensor]]


def reduce_ids(
    prompt_ids: Sequence[Sequence[int]], how: str, k: int, scores: Scores | None = None
) -> list[list[int]]:
    """Each prompt cut to ⌈T/k⌉ tokens the ``how`` way.

    ``scores`` (needed for ``prune``) maps prompts to per-token scores, (T,) each; each
    distinct prompt is scored once (a tree's prompt comes once per question, balanced data
    repeats rows).
    """
    if how == "first":
        return [list(p[: merged_length(len(p), k)]) for p in prompt_ids]
    if how == "last":
        return [list(p[len(p) - merged_length(len(p), k) :]) for p in prompt_ids]
    if how != "prune":
        raise KTMError(f"unknown token reduction {how!r}; choose one of {', '.join(REDUCTIONS)}")
    if scores is None:
        raise KTMError("prune needs token scores (the base model's self-information)")
    unique = list(dict.fromkeys(tuple(p) for p in prompt_ids))
    scored = dict(zip(unique, scores([list(u) for u in unique])))
    out = []
    for p in prompt_ids:
        s = scored[tuple(p)]
        keep = torch.topk(s, merged_length(len(p), k)).indices.sort().values.tolist()
        out.append([p[i] for i in keep])
    return out


def reduce_examples(
    examples: Sequence[LabeledExample],
    how: str,
    k: int,
    tokenize: Callable[[list[str]], list[list[int]]],
    scores: Scores | None = None,
) -> list[LabeledExample]:
    """The examples with their prompts replaced by the kept tokens (``prompt_ids``); the
    prompt text stays for reports. ``tokenize`` gives the ids the model would read."""
    ids = tokenize([e.prompt for e in examples])
    kept = reduce_ids(ids, how, k, scores)
    return [dataclasses.replace(e, prompt_ids=tuple(p)) for e, p in zip(examples, kept)]
