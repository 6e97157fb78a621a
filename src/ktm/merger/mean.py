"""The parameter-free block-mean merger: the simplest baseline; the identity at K = 1."""

from __future__ import annotations

import torch
from torch import nn

from .common import masked_block_mean


class MeanMerger(nn.Module):
    """Parameter-free block mean: the strongest simple baseline, and the identity at K = 1."""

    def __init__(self, k: int, hidden_size: int) -> None:
        super().__init__()
        self.k = k
        self.hidden_size = hidden_size

    def forward(self, blocks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, K, d), (N, K) -> (N, d), in the dtype of ``blocks`` (averaged in fp32)."""
        return masked_block_mean(blocks.float(), mask).to(blocks.dtype)
