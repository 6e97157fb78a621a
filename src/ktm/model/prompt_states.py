"""The states a merger with ``merger_layers`` reads: each prompt token's hidden state after the
base model's first layers, computed over the raw prompt.

A context-free merger sees K embeddings that know nothing of their neighbours; after a few
layers a token's state carries what attention gathered from the whole prompt before it (which
earlier token it repeats, what it follows). Only those first layers run over the raw tokens,
so their cost is a small share of an uncompressed prefill.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import KTMError


class _Enough(Exception):
    """Raised by the hook on the last layer wanted: the layers above it need not run."""


def layer_list(decoder: nn.Module) -> nn.ModuleList:
    """The decoder's list of transformer layers (``layers``, or GPT-2's ``h``)."""
    for name in ("layers", "h"):
        layers = getattr(decoder, name, None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise KTMError(
        f"merger_layers needs a decoder with a list of layers ('layers' or 'h'); "
        f"{type(decoder).__name__} has neither: leave merger_layers at 0"
    )


def check_layers(decoder: nn.Module, wanted: int) -> None:
    """Refuse ``merger_layers`` beyond the base model's depth, before anything runs."""
    n = len(layer_list(decoder))
    if wanted > n:
        raise KTMError(f"merger_layers={wanted} but the base model has {n} layers: use 1 to {n}")


def prompt_states(
    decoder: nn.Module,
    embed: Callable[[torch.Tensor], torch.Tensor],
    prompt_ids: Sequence[Sequence[int]],
    layers: int,
    device: torch.device | str,
) -> torch.Tensor:
    """Each prompt token's state after the decoder's first ``layers`` layers.

    Each prompt is read alone from position 0 (right-padded, causal), so a token's state does
    not depend on the rest of the batch.

    Args:
        decoder: the base model's decoder (the transformer without its head), LoRA included.
        embed: the input embedding, (n,) long -> (n, d).
        prompt_ids: per prompt, its token ids (lengths T_i, not all 0).
        layers: how many layers to run (>= 1).
    Returns:
        (sum T_i, d): the prompts' tokens in order, as :func:`ktm.packing.pack` flattens them.
    """
    lengths = [len(p) for p in prompt_ids]
    width = max(lengths)  # callers pass at least one non-empty prompt
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, : len(p)] = torch.tensor(list(p), dtype=torch.long)
        mask[i, : len(p)] = 1
    ids, mask = ids.to(device), mask.to(device)
    caught: list[torch.Tensor] = []

    def stop(_module, _inputs, output):
        caught.append(output[0] if isinstance(output, tuple) else output)
        raise _Enough

    hook = layer_list(decoder)[layers - 1].register_forward_hook(stop)
    try:
        decoder(inputs_embeds=embed(ids), attention_mask=mask, use_cache=False)
    except _Enough:
        pass
    finally:
        hook.remove()
    if not caught:
        raise KTMError(f"the decoder never ran its layer {layers}; leave merger_layers at 0")
    return caught[0][mask.bool()]


def merger_states(model, prompt_ids: Sequence[Sequence[int]]) -> torch.Tensor | None:
    """What a :class:`~ktm.model.KTMModel` hands its merger with the prompts: the states of
    :func:`prompt_states` with ``merger_layers`` at K > 1, else ``None``."""
    layers = model.config.merger_layers if model.k > 1 and any(prompt_ids) else 0
    if not layers:
        return None
    return prompt_states(model.decoder, model.embed, prompt_ids, layers, model.device)
