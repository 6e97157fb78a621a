"""The parameter-free merger: the block mean (the simplest baseline; the identity at K = 1)
or, with ``pool="select"``, the block's highest-ranked token (a pruning inside each block)."""

from __future__ import annotations

import torch
from torch import nn

from .common import pool_block


class MeanMerger(nn.Module):
    """Parameter-free block mean: the strongest simple baseline, and the identity at K = 1."""

    def __init__(self, k: int, hidden_size: int, pool: str = "mean") -> None:
        super().__init__()
        self.k = k
        self.hidden_size = hidden_size
        self.pool = pool

    def forward(
        self, blocks: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, K, d), (N, K)[, (N, K) token scores] -> (N, d), in the dtype of ``blocks``
        (averaged in fp32)."""
        return pool_block(blocks.float(), mask, self.pool, scores).to(blocks.dtype)
