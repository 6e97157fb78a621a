"""The paper's encoder: block mean + an MLP over the concatenated block (and its context)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import match_token_norm, pool_block


class MLPMerger(nn.Module):
    """The paper's encoder: block mean + MLP(concat of the K embeddings).

    MLP = Linear((C+K)·d → h) · ReLU · Linear(h → K·d) · ReLU · Linear(K·d → d), h = int(c·K)·d,
    where C (``context``, default 0: the paper's) is a number of tokens before the block that
    the MLP also reads; the mean is over the block's own tokens. The concatenation keeps token
    order inside the block, which the mean cannot see.
    With ``init="mean"`` the last layer starts at zero, so the merger starts as mean pooling.
    With ``layers`` > 0 (``merger_layers``) each token's embedding first gets its state after
    the base model's first layers added, through ``states`` (Linear(d → d), starting at zero,
    so the merger starts as the one without it): see :meth:`read_states`.
    """

    def __init__(
        self,
        k: int,
        hidden_size: int,
        hidden_factor: float,
        init: str = "mean",
        norm: str = "none",
        context: int = 0,
        pool: str = "mean",
        layers: int = 0,
    ) -> None:
        super().__init__()
        self.k = k
        self.context = context
        self.pool = pool
        self.hidden_size = hidden_size
        self.norm = norm
        width = k * hidden_size
        inner = max(1, int(hidden_factor * k)) * hidden_size
        self.mlp = nn.Sequential(
            nn.Linear((context + k) * hidden_size, inner),
            nn.ReLU(),
            nn.Linear(inner, width),
            nn.ReLU(),
            nn.Linear(width, hidden_size),
        )
        if init == "mean":
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
        self.layers = layers
        if layers:
            self.states = nn.Linear(hidden_size, hidden_size)
            nn.init.zeros_(self.states.weight)
            nn.init.zeros_(self.states.bias)

    def read_states(self, embeds: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """(n, d) token embeddings, (n, d) the same tokens' states after the base model's first
        ``layers`` layers -> (n, d) in the dtype of ``embeds``: the embeddings plus the states,
        scaled to unit norm and mapped by ``states``. (A residual stream's scale varies by
        orders of magnitude across positions; at unit norm a step of the map moves a merged
        embedding by a few per cent of a token's norm, not by more than the token.)"""
        w = self.states.weight
        mapped = self.states(F.normalize(states.to(w.dtype), dim=-1))
        return (embeds.to(w.dtype) + mapped).to(embeds.dtype)

    def forward(
        self, blocks: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, C + K, d), (N, C + K)[, (N, C + K) token scores] -> (N, d), in the dtype of
        ``blocks``. The MLP adds to the block's mean, or with ``pool="select"`` to its
        highest-ranked token.

        The first C slots are the context (zero and masked out before the prompt starts).
        The merger computes in its own dtype (fp32 by default, also under a bf16 base model).
        """
        x = blocks.to(self.mlp[0].weight.dtype)
        flat = x.reshape(x.shape[0], (self.context + self.k) * self.hidden_size)
        own, own_mask = x[:, self.context :], mask[:, self.context :]
        own_scores = scores[:, self.context :] if scores is not None else None
        out = pool_block(own, own_mask, self.pool, own_scores) + self.mlp(flat)
        if self.norm == "token":
            out = match_token_norm(out, own, own_mask)
        return out.to(blocks.dtype)


def widen_context(state: dict[str, torch.Tensor], merger: nn.Module) -> dict[str, torch.Tensor]:
    """Fit the weights of an MLP merger with less context (or no ``merger_layers``) to
    ``merger``.

    The first layer gets zero columns for the extra context slots (which come first in its
    input), and a missing ``states`` map starts at zero, so the widened merger computes exactly
    what the saved one did until training teaches it to use the new inputs.
    """
    key = "mlp.0.weight"
    if not isinstance(merger, MLPMerger) or key not in state:
        return state
    if merger.layers and "states.weight" not in state:
        state = {**state, **{f"states.{n}": torch.zeros_like(p) for n, p in
                             merger.states.named_parameters()}}  # fmt: skip
    saved, want = state[key], merger.mlp[0].weight
    extra = want.shape[1] - saved.shape[1]
    if extra <= 0 or saved.shape[0] != want.shape[0]:
        return state  # same or other shape: the strict load reports a mismatch
    pad = saved.new_zeros(saved.shape[0], extra)
    return {**state, key: torch.cat([pad, saved], dim=1)}
