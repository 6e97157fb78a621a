"""Export a ktm model for engines that read plain model folders (vLLM).

vLLM does not load LoRA on the output layer, and serves compressed prompts as
``prompt_embeds``. ``export_merged`` therefore writes the base model with the LoRA merged into
its weights (a plain transformers folder, safetensors), and beside it, in ``ktm/``, the merger
and the ktm config: the client compresses prompts with that merger over the exported model's
(unchanged) input embeddings and sends the embeddings to the engine.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import KTMError
from ..io_utils import atomic_dir, write_json_atomic
from ..model import CONFIG_NAME, MERGER_NAME, KTMModel
from ..model.artifacts import check_merger_file, load_merger
from ..model.lm_utils import quiet_peft
from ..model.trust import check_links
from .start import model_folder

KTM_SUBDIR = "ktm"


def _untie_output_layer(causal_lm: nn.Module) -> None:
    """Give the output layer its own weight, so merging its LoRA leaves the input embeddings
    (which the merger reads) untouched."""
    head, embed = causal_lm.get_output_embeddings(), causal_lm.get_input_embeddings()
    base = getattr(head, "base_layer", head)
    if base.weight is embed.weight or base.weight.data_ptr() == embed.weight.data_ptr():
        base.weight = nn.Parameter(embed.weight.detach().clone(), requires_grad=False)
    causal_lm.config.tie_word_embeddings = False
    text = causal_lm.config.get_text_config()
    if text is not causal_lm.config:
        text.tie_word_embeddings = False


def merged_causal_lm(model: KTMModel) -> nn.Module:
    """The base causal LM with ``model``'s LoRA merged in (``model`` is consumed)."""
    if model.config.positions != "compact":
        raise KTMError(
            f"this model reads positions={model.config.positions!r}, but vLLM numbers prompt "
            f"embeddings 0, 1, 2, …; serve it with `ktm serve`, or train with --positions compact"
        )
    _untie_output_layer(model.causal_lm)
    lm = model.lm
    if hasattr(lm, "merge_and_unload"):
        with quiet_peft():
            lm = lm.merge_and_unload()
    return lm


def export_merged(
    checkpoint: str | Path,
    out: str | Path,
    dtype: torch.dtype | None = None,
    base_model: str | None = None,
) -> Path:
    """Write ``out/`` (merged model + tokenizer) and ``out/ktm/`` (merger + ktm config);
    ``base_model`` approves the base to merge into (see :mod:`ktm.model.trust`)."""
    src = model_folder(checkpoint)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise KTMError(f"{out} exists and is not empty; choose a new folder")
    model = KTMModel.from_pretrained(src, base_model=base_model, dtype=dtype)
    lm = merged_causal_lm(model)
    with atomic_dir(out) as tmp:
        lm.save_pretrained(str(tmp), safe_serialization=True)
        model.tokenizer.save_pretrained(str(tmp))
        (tmp / KTM_SUBDIR).mkdir()
        for name in (CONFIG_NAME, MERGER_NAME):
            (tmp / KTM_SUBDIR / name).write_bytes((src / name).read_bytes())
        write_json_atomic(
            tmp / KTM_SUBDIR / "export.json",
            {"source": str(src), "format": "vllm", "lora_merged": True, "k": model.k},
        )
    return out


def load_exported(folder: str | Path, dtype: torch.dtype | None = None) -> KTMModel:
    """A :class:`KTMModel` over an exported folder: the merged LM, no adapter, its merger."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..config import KTMConfig
    from ..io_utils import read_json

    folder = Path(folder)
    check_links(folder)
    meta_file = folder / KTM_SUBDIR / CONFIG_NAME
    if not meta_file.is_file():
        raise KTMError(f"{folder} is not a ktm export (no {KTM_SUBDIR}/{CONFIG_NAME})")
    meta = read_json(meta_file, "ktm config")
    config = KTMConfig.from_dict({**meta["config"], "lora_r": 0})
    check_merger_file(folder / KTM_SUBDIR / MERGER_NAME, config, lm_hidden_size(folder))
    lm = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = KTMModel.from_model(lm, tokenizer, config, name=meta.get("base_model", "custom"))
    load_merger(model.merger, folder / KTM_SUBDIR / MERGER_NAME)
    return model


def lm_hidden_size(folder: Path) -> int:
    """The hidden size an exported model folder's config states (read before loading it)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder).get_text_config().hidden_size
    except (OSError, ValueError, AttributeError) as e:
        raise KTMError(f"{folder} has no readable model config: {e}") from None
