"""The weights a merger config implies, known before anything is allocated: their names and
shapes (to check a saved file against) and their count (to refuse a config that would not
fit in memory)."""

from __future__ import annotations

from ..config import KTMConfig

MAX_PARAMETERS = 2**31  # a merger larger than this is a typo or an attack, not a model


def expected_shapes(config: KTMConfig, hidden_size: int) -> dict[str, tuple[int, ...]]:
    """Name → shape of every weight of the merger ``config`` builds (see ``MLPMerger``)."""
    if config.k == 1 or config.merger == "mean":
        return {}
    d, k, c = hidden_size, config.k, config.merger_context
    inner = max(1, int(config.hidden_factor * k)) * d
    states = {"states.weight": (d, d), "states.bias": (d,)} if config.merger_layers else {}
    return {
        **states,
        "mlp.0.weight": (inner, (c + k) * d),
        "mlp.0.bias": (inner,),
        "mlp.2.weight": (k * d, inner),
        "mlp.2.bias": (k * d,),
        "mlp.4.weight": (d, k * d),
        "mlp.4.bias": (d,),
    }


def parameter_count(config: KTMConfig, hidden_size: int) -> int:
    total = 0
    for shape in expected_shapes(config, hidden_size).values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total
