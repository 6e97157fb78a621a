"""Block mergers: K token embeddings in, one embedding out.

Each merger is one module here; :func:`build_merger` picks the one a :class:`KTMConfig` names.
"""

from __future__ import annotations

from torch import nn

from ..config import KTMConfig
from ..errors import KTMError
from .common import masked_block_mean, match_token_norm
from .mean import MeanMerger
from .mlp import MLPMerger, widen_context
from .shapes import MAX_PARAMETERS, expected_shapes, parameter_count

__all__ = [
    "MLPMerger",
    "MeanMerger",
    "build_merger",
    "expected_shapes",
    "parameter_count",
    "masked_block_mean",
    "match_token_norm",
    "widen_context",
]


def build_merger(config: KTMConfig, hidden_size: int) -> nn.Module:
    """The merger ``config`` asks for; K = 1 always gets the (identity) mean merger.

    A config whose merger would have more than :data:`MAX_PARAMETERS` weights is refused
    before any is allocated.
    """
    n = parameter_count(config, hidden_size)
    if n > MAX_PARAMETERS:
        raise KTMError(
            f"this merger would have {n:,} weights (k={config.k}, merger_hidden_factor="
            f"{config.hidden_factor}, merger_context={config.merger_context}, hidden size "
            f"{hidden_size}); ktm builds at most {MAX_PARAMETERS:,}: lower them"
        )
    if config.k == 1:
        return MeanMerger(1, hidden_size)
    if config.merger == "mean":
        return MeanMerger(config.k, hidden_size, config.merger_pool)
    return MLPMerger(
        config.k,
        hidden_size,
        config.hidden_factor,
        config.merger_init,
        config.merger_norm,
        config.merger_context,
        config.merger_pool,
        config.merger_layers,
    )
