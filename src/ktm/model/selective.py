"""Selective expansion in the model: rank a prompt's tokens and choose which stay raw within
a budget of positions (the choice itself is :func:`ktm.expansion.choose_raw`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import KTMError
from ..expansion import budget_positions as positions_within
from ..expansion import check_share, choose_raw
from ..query_match import question_scores_of_ids
from ..token_scores import fit_idf, prior_surprisal, self_information


class SelectiveMixin:
    """Token scores and raw-token choices of a :class:`KTMModel` (mixed into it)."""

    _prior: torch.Tensor | None = None
    token_idf: torch.Tensor | None = None  # (V,), for token_scorer="idf": fit_token_idf

    def fit_token_idf(self, prompts: Sequence[str | Sequence[int]]) -> None:
        """Fit the ``idf`` scorer's table on ``prompts`` (a task's training prompts)."""
        ids, _ = self.encode_prompts(list(prompts))
        vocab = self.causal_lm.get_input_embeddings().weight.shape[0]
        self.token_idf = fit_idf(ids, vocab)

    def token_scores(
        self,
        prompt_ids: Sequence[Sequence[int]],
        suffix_ids: Sequence[Sequence[int]] | None = None,
    ) -> list[torch.Tensor]:
        """(T,) per prompt: how worth keeping raw each token is, by ``config.token_scorer``,
        under the base model with the adapter off (``query``: by the raw ``suffix_ids`` after
        each prompt, its question)."""
        scorer = self.config.token_scorer
        if scorer == "query":
            return self._question_scores(prompt_ids, suffix_ids)
        if scorer == "auto":
            scorer = "prior" if self.token_idf is None else "idf"
        if scorer == "idf":
            if self.token_idf is None:
                raise KTMError(
                    "token_scorer idf needs its table, fitted on training prompts: train the "
                    "model with ktm train, or call model.fit_token_idf(prompts)"
                )
            return [self.token_idf[torch.tensor(list(p), dtype=torch.long)] for p in prompt_ids]
        if scorer == "selfinfo":
            with self.base_lm() as lm:
                return self_information(lm, prompt_ids)
        if self._prior is None:
            tok = self.tokenizer
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            with self.base_lm() as lm:
                self._prior = prior_surprisal(lm, start)
        return [self._prior[torch.tensor(list(p), dtype=torch.long)] for p in prompt_ids]

    def _question_scores(
        self, prompt_ids: Sequence[Sequence[int]], suffix_ids: Sequence[Sequence[int]] | None
    ) -> list[torch.Tensor]:
        if suffix_ids is None or not any(suffix_ids):
            raise KTMError(
                "token_scorer query ranks a prompt's tokens by the question kept raw after it, "
                "and these prompts have none: give a suffix (--suffix, --split-question, "
                "--suffix-template) or choose another --token-scorer"
            )
        tok = self.tokenizer
        return [
            question_scores_of_ids(tok, p, tok.decode(list(s), skip_special_tokens=True))
            for p, s in zip(prompt_ids, suffix_ids)
        ]

    def raw_tokens(
        self,
        prompt_ids: Sequence[Sequence[int]],
        budget: float | None = None,
        budget_positions: int | None = None,
        scores: list[torch.Tensor] | None = None,
        suffix_ids: Sequence[Sequence[int]] | None = None,
    ) -> list[list[bool]] | None:
        """Per prompt, True for each token kept raw; None when nothing is (no budget).

        ``budget`` (a share of each prompt's tokens) or ``budget_positions`` (positions per
        prompt) override ``config.budget``; ``scores`` are the prompts' token scores when
        already computed; ``suffix_ids`` the raw tokens after each prompt (the ``query``
        scorer reads them).
        """
        if budget is not None and budget_positions is not None:
            raise KTMError("give budget (a share of the prompt) or budget_positions, not both")
        if budget is not None:
            check_share(budget)
        if budget_positions is not None and (
            isinstance(budget_positions, bool)
            or not isinstance(budget_positions, int)
            or budget_positions < 1
        ):
            raise KTMError(f"budget_positions must be a positive integer, got {budget_positions!r}")
        if budget is None and budget_positions is None:
            budget = self.config.budget
        if budget is None and budget_positions is None:
            return None
        if self.k == 1:
            raise KTMError("selective expansion needs K > 1: at K = 1 every token is raw")
        limits = [positions_within(len(p), self.k, budget, budget_positions) for p in prompt_ids]
        scores = scores if scores is not None else self.token_scores(prompt_ids, suffix_ids)
        return [choose_raw(s, self.k, n) for s, n in zip(scores, limits)]
