"""Config fields that several commands share (one definition, one help text)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import DTYPES, KTMConfig
from ..fields import option
from ..model import DEFAULT_MODEL
from ..training import TrainConfig


def model_option() -> Any:
    return option(
        DEFAULT_MODEL,
        help="base causal LM: smollm2-135m (bundled), a local folder or a hub id",
    )


def dtype_option() -> Any:
    return option(
        "float32",
        choices=DTYPES,
        help="dtype of the frozen base weights (merger and LoRA train in float32)",
    )


def ktm_part() -> Any:
    """The model's K-token-merging config, its fields flattened into options."""
    return dataclasses.field(
        default_factory=KTMConfig, metadata={"title": "model (K, merger, LoRA)"}
    )


def train_part() -> Any:
    """The optimisation recipe, its fields flattened into options."""
    return dataclasses.field(default_factory=TrainConfig, metadata={"title": "training"})
