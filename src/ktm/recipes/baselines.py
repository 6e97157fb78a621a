"""Token-budget baselines in a run: the examples' prompts cut to merging's budget before the
model (at K = 1) ever sees them (:mod:`ktm.tasks.token_budget`); ``prune`` scores tokens with
the run's own base model, adapter off."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..model import KTMModel
from ..query_match import question_scores_of_ids
from ..tasks.base import LabeledExample
from ..tasks.token_budget import reduce_examples, self_information
from .data import Stage


def reduce_for(
    model: KTMModel, examples: Sequence[LabeledExample], how: str, k: int
) -> list[LabeledExample]:
    """``examples`` with the prompt tokens a ``how`` baseline at K = ``k`` keeps."""

    def scores(ids):
        with model.base_lm() as lm:
            return self_information(lm, ids)

    def asked(ids, question: str):
        return question_scores_of_ids(model.tokenizer, ids, question)

    tokenize = lambda texts: model.tokenize(texts, special=True)  # noqa: E731
    ranked = how in ("prune", "qprune")
    return reduce_examples(examples, how, k, tokenize, scores if ranked else None, asked)


def reduce_stages(model: KTMModel, stages: Sequence[Stage], how: str, k: int) -> list[Stage]:
    """Every stage's train and test examples reduced (see :func:`reduce_for`)."""
    return [
        dataclasses.replace(
            s, train=reduce_for(model, s.train, how, k), test=reduce_for(model, s.test, how, k)
        )
        for s in stages
    ]
