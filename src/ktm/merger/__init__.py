"""Block mergers: K token embeddings in, one embedding out.

Each merger is one module here; :func:`build_merger` picks the one a :class:`KTMConfig` names.
"""

from __future__ import annotations

from torch import nn

from ..config import KTMConfig
from .common import masked_block_mean, match_token_norm
from .mean import MeanMerger
from .mlp import MLPMerger, widen_context

__all__ = [
    "MLPMerger",
    "MeanMerger",
    "build_merger",
    "masked_block_mean",
    "match_token_norm",
    "widen_context",
]


def build_merger(config: KTMConfig, hidden_size: int) -> nn.Module:
    """The merger ``config`` asks for; K = 1 always gets the (identity) mean merger."""
    if config.k == 1 or config.merger == "mean":
        return MeanMerger(config.k, hidden_size)
    return MLPMerger(
        config.k,
        hidden_size,
        config.hidden_factor,
        config.merger_init,
        config.merger_norm,
        config.merger_context,
    )
