"""Token-space baselines at the budget of K-token merging: keep ⌈T/K⌉ of a prompt's T tokens.

- ``first``: keep the first ⌈T/K⌉ tokens (truncate the end);
- ``last``: keep the last ⌈T/K⌉ tokens (truncate the start);
- ``prune``: keep the ⌈T/K⌉ most informative tokens, in order, scored by their
  self-information −log p(t_i | t_<i) under the base model itself (Selective Context,
  Li et al. 2023, at token granularity; the first token has no context and is always kept).

A reduced prompt then goes to the LoRA model uncompressed (K = 1), so every baseline reads
exactly as many prompt positions as K-token merging does. The uncompressed suffix is never
reduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..config import REDUCTIONS
from ..packing import merged_length

__all__ = ["REDUCTIONS", "budget", "reduce_ids", "self_information"]


def budget(n_tokens: int, k: int) -> int:
    """Positions K-token merging leaves for ``n_tokens`` prompt tokens: ⌈T/K⌉."""
    return merged_length(n_tokens, k)


def reduce_ids(
    prompt_ids: Sequence[Sequence[int]],
    how: str,
    k: int,
    scores: Callable[[Sequence[Sequence[int]]], list[torch.Tensor]] | None = None,
) -> list[list[int]]:
    """Each prompt cut to ``budget(T, k)`` tokens the ``how`` way.

    ``scores`` (needed for ``prune``) maps prompts to per-token scores, (T,) each.
    """
    if how == "first":
        return [list(p[: budget(len(p), k)]) for p in prompt_ids]
    if how == "last":
        return [list(p[len(p) - budget(len(p), k) :]) for p in prompt_ids]
    if how != "prune":
        raise ValueError(f"unknown reduction {how!r}")
    if scores is None:
        raise ValueError("prune needs token scores")
    out = []
    for p, s in zip(prompt_ids, scores(prompt_ids)):
        keep = torch.topk(s, budget(len(p), k)).indices.sort().values.tolist()
        out.append([p[i] for i in keep])
    return out


@torch.no_grad()
def self_information(
    causal_lm: torch.nn.Module, prompt_ids: Sequence[Sequence[int]], batch_size: int = 8
) -> list[torch.Tensor]:
    """−log p(t_i | t_<i) of every token, (T,) per prompt; +inf for the first token.

    Prompts run one batch at a time, right-padded (causal attention makes padding harmless).
    """
    device = causal_lm.get_input_embeddings().weight.device
    out: list[torch.Tensor] = []
    for start in range(0, len(prompt_ids), batch_size):
        chunk = [list(p) for p in prompt_ids[start : start + batch_size]]
        width = max(map(len, chunk))
        ids = torch.zeros(len(chunk), width, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(chunk):
            ids[i, : len(p)] = torch.tensor(p, device=device)
            mask[i, : len(p)] = 1
        logits = causal_lm(input_ids=ids, attention_mask=mask).logits.float()
        logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
        for i, p in enumerate(chunk):
            info = torch.full((len(p),), math.inf)
            info[1:] = -logp[i, : len(p) - 1].cpu()
            out.append(info)
    return out
