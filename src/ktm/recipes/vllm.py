"""Serve compressed prompts on vLLM: the merger runs client-side, vLLM reads embeddings.

Start vLLM on an exported model (``ktm export RUN --out EXPORT``; vLLM does not load LoRA on
the output layer, so the export merges it)::

    vllm serve EXPORT --enable-prompt-embeds --max-model-len 4096

then compress with ktm and send ``prompt_embeds``: for the OpenAI-compatible Completions API
a base64 string of a ``torch.save``d tensor of shape (N, d) (``extra_body={"prompt_embeds":
...}``), for vLLM's offline ``LLM.generate`` an ``EmbedsPrompt`` dict
``{"prompt_embeds": tensor}``. The prompt part must already contain any chat template: the
Completions API applies none to embeddings.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import torch

from ..errors import KTMError
from ..model import KTMModel


def prompt_embeds(
    model: KTMModel,
    prompts: Sequence[str],
    budget: float | None = None,
    budget_positions: int | None = None,
    suffixes: Sequence[str] | None = None,
) -> list[torch.Tensor]:
    """One (N_i, d) tensor per prompt: its compressed positions without padding (with
    selective expansion, the kept tokens' own embeddings among the merged blocks), then the
    embeddings of its raw ``suffixes`` (a question after the compressed context; the
    ``query`` token scorer ranks by it)."""
    if model.config.positions != "compact":
        raise KTMError(
            f"vLLM numbers prompt embeddings 0, 1, 2, …, but this model reads "
            f"positions={model.config.positions!r}; serve it with `ktm serve` instead"
        )
    with torch.no_grad():
        suffix_list = list(suffixes) if suffixes is not None else None
        batch = model.compress(list(prompts), suffix_list, budget, budget_positions)
    mask = batch.attention_mask.bool()
    return [batch.embeds[i][mask[i]].detach().cpu() for i in range(len(prompts))]


def encode_prompt_embeds(embeds: torch.Tensor) -> str:
    """Base64 of ``torch.save(embeds)``, as vLLM's Completions API reads ``prompt_embeds``."""
    if embeds.dim() != 2:
        raise KTMError(f"prompt_embeds must be (N, d), got shape {tuple(embeds.shape)}")
    buffer = io.BytesIO()
    torch.save(embeds.contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_prompt_embeds(data: str) -> torch.Tensor:
    """The inverse of :func:`encode_prompt_embeds` (tensors only: no pickled code runs)."""
    try:
        raw = base64.b64decode(data, validate=True)
        tensor = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except Exception as e:  # binascii, pickle and torch errors: one message
        raise KTMError(f"not a base64 torch.save'd tensor: {e}") from None
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2:
        raise KTMError("prompt_embeds must decode to a 2-D tensor (N, d)")
    return tensor


def embeds_prompts(model: KTMModel, prompts: Sequence[str], **options) -> list[dict]:
    """``EmbedsPrompt`` dicts for vLLM's offline ``LLM.generate`` (``options``: ``budget`` or
    ``budget_positions``, selective expansion as :meth:`KTMModel.compress`, and
    ``suffixes``, as :func:`prompt_embeds`)."""
    return [{"prompt_embeds": e} for e in prompt_embeds(model, prompts, **options)]


def completions_request(
    model: KTMModel,
    prompts: Sequence[str],
    served_model: str,
    budget: float | None = None,
    budget_positions: int | None = None,
    suffixes: Sequence[str] | None = None,
    **params,
) -> list[dict]:
    """JSON bodies for ``POST /v1/completions`` on a vLLM server, one per prompt.

    ``budget`` / ``budget_positions``: selective expansion (see :meth:`KTMModel.compress`);
    ``suffixes``: raw text after each compressed prompt; ``params`` are Completions API
    fields (``max_tokens``, ``temperature`` …).
    """
    return [
        {"model": served_model, "prompt_embeds": encode_prompt_embeds(e), **params}
        for e in prompt_embeds(model, prompts, budget, budget_positions, suffixes)
    ]


def complete(
    model: KTMModel,
    prompts: Sequence[str],
    base_url: str,
    served_model: str,
    api_key: str = "EMPTY",
    budget: float | None = None,
    budget_positions: int | None = None,
    suffixes: Sequence[str] | None = None,
    **params,
) -> list[str]:
    """Compress ``prompts`` (then the raw ``suffixes``) and complete them on the vLLM server
    at ``base_url`` (…/v1)."""
    try:
        from openai import OpenAI
    except ImportError:
        raise KTMError("talking to vLLM needs the `openai` package: pip install openai") from None
    client = OpenAI(base_url=base_url, api_key=api_key)
    texts = []
    bodies = completions_request(
        model, prompts, served_model, budget, budget_positions, suffixes, **params
    )
    for body in bodies:
        embeds = body.pop("prompt_embeds")
        response = client.completions.create(
            prompt="", extra_body={"prompt_embeds": embeds}, **body
        )
        texts.append(response.choices[0].text)
    return texts
