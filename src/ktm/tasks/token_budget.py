"""Token-space baselines at the budget of K-token merging, as prompt transforms: each keeps
⌈T/K⌉ of a prompt's T tokens and hands the kept tokens to the model as its prompt.

- ``first``: the first ⌈T/K⌉ tokens (the end truncated);
- ``last``: the last ⌈T/K⌉ tokens (the start truncated);
- ``prune``: the ⌈T/K⌉ most informative tokens, in order, scored by their self-information
  −log p(t_i | t_<i) under the base model (Selective Context, Li et al. 2023, at token
  granularity; the first token has no context and is always kept);
- ``qprune``: question-aware pruning (as LongLLMLingua ranks by the question): the tokens the
  raw question after the prompt names, and the word after each, first
  (:func:`ktm.query_match.question_scores`), then by self-information — the same-budget
  baseline of selective expansion with ``--token-scorer query``.

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
Asked = Callable[[Sequence[int], str], torch.Tensor]  # (prompt ids, question) -> (T,)


def reduce_ids(
    prompt_ids: Sequence[Sequence[int]],
    how: str,
    k: int,
    scores: Scores | None = None,
    asked: Sequence[torch.Tensor] | None = None,
) -> list[list[int]]:
    """Each prompt cut to ⌈T/k⌉ tokens the ``how`` way.

    ``scores`` (needed for ``prune`` and ``qprune``) maps prompts to per-token scores, (T,)
    each; each distinct prompt is scored once (a tree's prompt comes once per question,
    balanced data repeats rows). ``asked`` (needed for ``qprune``): per prompt, (T,) how much
    its question points at each token, ranked before ``scores``.
    """
    if how == "first":
        return [list(p[: merged_length(len(p), k)]) for p in prompt_ids]
    if how == "last":
        return [list(p[len(p) - merged_length(len(p), k) :]) for p in prompt_ids]
    if how not in ("prune", "qprune"):
        raise KTMError(f"unknown token reduction {how!r}; choose one of {', '.join(REDUCTIONS)}")
    if scores is None:
        raise KTMError(f"{how} needs token scores (the base model's self-information)")
    if how == "qprune" and asked is None:
        raise KTMError("qprune needs the question's scores of each prompt's tokens")
    unique = list(dict.fromkeys(tuple(p) for p in prompt_ids))
    scored = dict(zip(unique, scores([list(u) for u in unique])))
    out = []
    for n, p in enumerate(prompt_ids):
        info = scored[tuple(p)].tolist()
        first = asked[n].tolist() if how == "qprune" else [0.0] * len(p)
        order = sorted(range(len(p)), key=lambda i: (-first[i], -info[i], i))
        out.append([p[i] for i in sorted(order[: merged_length(len(p), k)])])
    return out


def reduce_examples(
    examples: Sequence[LabeledExample],
    how: str,
    k: int,
    tokenize: Callable[[list[str]], list[list[int]]],
    scores: Scores | None = None,
    asked: Asked | None = None,
) -> list[LabeledExample]:
    """The examples with their prompts replaced by the kept tokens (``prompt_ids``); the
    prompt text stays for reports. ``tokenize`` gives the ids the model would read;
    ``asked`` scores a prompt's tokens by its question (``qprune``)."""
    ids = tokenize([e.prompt for e in examples])
    questions = None
    if how == "qprune":
        if asked is None or not any(e.suffix for e in examples):
            raise KTMError(
                "qprune ranks a prompt's tokens by the question kept raw after it, and these "
                "examples have none: keep the question raw (--split-question, "
                "--suffix-template) or use prune"
            )
        questions = [asked(p, e.suffix or "") for p, e in zip(ids, examples)]
    kept = reduce_ids(ids, how, k, scores, questions)
    return [dataclasses.replace(e, prompt_ids=tuple(p)) for e, p in zip(examples, kept)]
