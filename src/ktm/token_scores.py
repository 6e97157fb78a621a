"""How informative each prompt token is, under a causal LM: what Selective Context pruning and
selective expansion (:mod:`ktm.expansion`) rank tokens by.

- ``self_information``: −log p(t_i | t_<i), exact but a full forward pass over the prompt;
- ``prior_surprisal``: −log p(t | start of text), one forward pass of a single token per
  model, then a table look-up per token: free at inference, blind to context;
- ``fit_idf``: inverse document frequency over a set of prompts (a task's training prompts):
  a token in every prompt (a template's words) scores 0, a rare one high; a look-up too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


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


@torch.no_grad()
def prior_surprisal(causal_lm: torch.nn.Module, start_id: int) -> torch.Tensor:
    """(V,) −log p(t | ``start_id``): how surprising each token is at the start of a text."""
    device = causal_lm.get_input_embeddings().weight.device
    ids = torch.tensor([[start_id]], device=device)
    logits = causal_lm(input_ids=ids).logits[0, -1].float()
    return -logits.log_softmax(-1).cpu()


def fit_idf(prompt_ids: Sequence[Sequence[int]], vocab_size: int) -> torch.Tensor:
    """(V,) log((N + 1) / (df + 1)) over the N prompts; df: prompts holding the token."""
    df = torch.zeros(vocab_size)
    for p in prompt_ids:
        df[torch.tensor(sorted(set(p)), dtype=torch.long)] += 1
    return torch.log((len(prompt_ids) + 1) / (df + 1))
