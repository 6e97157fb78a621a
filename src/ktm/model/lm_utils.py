"""Helpers over the wrapped transformers model and peft: LoRA targets, quiet peft notes, eval
mode, adapters off, and the decoder's argument names (which differ across transformers releases
and model families)."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from ..errors import KTMError


def linear_module_names(causal_lm: nn.Module) -> list[str]:
    """Suffix names of every linear layer inside the decoder (q_proj, …, c_attn, …)."""
    from transformers.pytorch_utils import Conv1D

    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in decoder.named_modules()
        if isinstance(module, (nn.Linear, Conv1D))
    }
    return sorted(names)


def module_name(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return name
    raise KTMError("could not find the model's output layer")  # pragma: no cover


@functools.cache
def cache_argument(decoder_class: type) -> str:
    """The decoder's name for its KV cache: transformers 5.24 renamed ``past_key_values`` to
    ``cache`` (the old name is removed in 5.40); earlier 5.x releases know only the old one."""
    params = inspect.signature(decoder_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@contextmanager
def quiet_peft():
    """Silence peft's notes that need no action from the user: the output layer's LoRA is not
    tied to the (frozen) input embedding, and GPT-2-style Conv1D layers beside a Linear head
    get each their own weight layout."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out is set to.*")
        yield


def reads_position_ids(decoder_class: type) -> bool:
    """Whether the decoder places tokens by ``position_ids`` (ALiBi models such as BLOOM and
    MPT take positions from the attention mask instead)."""
    return "position_ids" in inspect.signature(decoder_class.forward).parameters


@contextmanager
def adapters_off(lm: nn.Module) -> Iterator[None]:
    """The bare base model inside the block (a no-op without LoRA)."""
    if hasattr(lm, "disable_adapter"):
        with lm.disable_adapter():
            yield
    else:
        yield


class eval_mode:
    """Context manager: eval mode inside (no LoRA dropout), previous mode restored after."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc) -> None:
        self.module.train(self.was_training)
