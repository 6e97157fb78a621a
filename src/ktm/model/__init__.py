"""The model layer: :class:`KTMModel` (merger + LoRA-adapted causal LM), its losses,
generation, and its saved-folder format. It knows nothing of training runs or run folders."""

from .artifacts import ADAPTER_DIR, CONFIG_NAME, MERGER_NAME
from .base_models import DEFAULT_MODEL, load_base, load_tokenizer
from .core import KTMModel
from .losses import RECONSTRUCT_MARKER

__all__ = [
    "ADAPTER_DIR",
    "CONFIG_NAME",
    "DEFAULT_MODEL",
    "MERGER_NAME",
    "RECONSTRUCT_MARKER",
    "KTMModel",
    "load_base",
    "load_tokenizer",
]
