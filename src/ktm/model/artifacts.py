"""A ktm model folder: ``ktm_config.json``, ``merger.safetensors`` and the PEFT ``adapter/``.

Saving, loading, starting a new model from a saved one's weights, and the checks that a
saved model fits the model at hand (same base model shape, K, merger and LoRA shape).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from typing_extensions import Self

from .. import __version__
from ..config import KTMConfig
from ..errors import KTMError
from ..io_utils import atomic_dir, read_json, write_json_atomic
from ..merger import build_merger, expected_shapes, widen_context
from .base_models import load_base
from .lm_utils import quiet_peft
from .trust import check_links, check_saved_base

CONFIG_NAME = "ktm_config.json"
MERGER_NAME = "merger.safetensors"
IDF_NAME = "token_idf.safetensors"  # the idf scorer's table, when the model has one
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
BASE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")


def base_info(causal_lm: nn.Module) -> dict:
    """The shape of a base model that a saved merger and adapter depend on."""
    cfg = causal_lm.config.get_text_config()
    return {
        "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": getattr(cfg, "num_hidden_layers", None),
        "vocab_size": causal_lm.get_input_embeddings().weight.shape[0],
    }


def check_base(path: Path, expected: dict, actual: dict, name: str) -> None:
    """Refuse weights from ``path``, made for a base model of shape ``expected``, on a base
    model (``name``) of shape ``actual``."""
    for key in BASE_KEYS:
        if key in expected and expected[key] != actual.get(key):
            raise KTMError(
                f"checkpoint {path} was trained on a base model with {key} "
                f"{expected[key]}, but {name!r} has {actual.get(key)}; load it with its own base"
            )


def check_same_shape(
    path: Path, mine: KTMConfig, other: KTMConfig, widen: bool, lora_only: bool = False
) -> None:
    """``other`` (the config of weights saved in ``path``) must have ``mine``'s K, merger and
    LoRA shape; with ``widen``, its merger may read less context (see :func:`widen_context`);
    with ``lora_only``, only the LoRA shape and the positions must match."""
    have, saved = mine.merger_context, other.merger_context
    if not lora_only and (saved > have or (saved != have and not widen)):
        how = "" if widen else " (a training checkpoint must match exactly)"
        raise KTMError(
            f"{path} was trained with merger_context={saved} but this model has "
            f"merger_context={have}{how}; a merger can only start from one with less context"
        )
    have, saved = mine.merger_layers, other.merger_layers
    if not lora_only and saved != have and (saved or not widen):
        raise KTMError(
            f"{path} was trained with merger_layers={saved} but this model has "
            f"merger_layers={have}; a merger can only start from one with the same layers, "
            "or none (its states map then starts at zero)"
        )
    merger_keys = () if lora_only else ("k", "merger", "hidden_factor", "merger_norm")
    for key in (*merger_keys, "positions", "lora_r", "lora_targets", "lora_lm_head"):
        if getattr(other, key) != getattr(mine, key):
            raise KTMError(
                f"{path} was trained with {key}={getattr(other, key)!r} but this model has "
                f"{key}={getattr(mine, key)!r}; use a matching checkpoint or options"
            )


def read_saved_config(path: Path) -> dict:
    """The ``ktm_config.json`` of a saved model folder, checked for its required keys."""
    meta = read_json(path / CONFIG_NAME, "ktm config")
    if not isinstance(meta, dict) or "config" not in meta or "base_model" not in meta:
        raise KTMError(f"{path / CONFIG_NAME} is not a ktm config (no 'config'/'base_model')")
    return meta


FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


def check_merger_file(file: Path, config: KTMConfig, hidden_size: int) -> None:
    """The weights in ``file`` must be the ones ``config`` implies — names, shapes, float
    dtypes — checked from the file's header before anything is built or read."""
    from safetensors import SafetensorError, safe_open

    if not file.is_file():
        raise KTMError(f"merger weights missing: {file}")
    want = expected_shapes(config, hidden_size)
    try:
        with safe_open(str(file), framework="pt") as f:
            have = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                    for k in f.keys()}  # fmt: skip
    except (SafetensorError, OSError, RuntimeError) as e:
        raise KTMError(f"merger weights {file} are unreadable or corrupt: {e}") from None
    if set(have) != set(want):
        raise KTMError(
            f"merger weights {file} hold {sorted(have)[:4]} but the config implies "
            f"{sorted(want)[:4]}; the folder's ktm_config.json and merger do not match"
        )
    for name, (shape, dtype) in have.items():
        if shape != want[name]:
            raise KTMError(
                f"merger weight {name} in {file} has shape {shape}, but k={config.k}, "
                f"merger_hidden_factor={config.hidden_factor}, merger_context="
                f"{config.merger_context} and hidden_size {hidden_size} imply {want[name]}; "
                f"the folder's ktm_config.json and merger do not match"
            )
        if dtype not in FLOAT_DTYPES:
            raise KTMError(f"merger weight {name} in {file} is {dtype}, not a float type")


def load_merger(merger: nn.Module, file: Path, adapt: Callable | None = None) -> None:
    """Load ``file`` into ``merger`` strictly, after ``adapt(state, merger)`` if given."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise KTMError(f"merger weights missing: {file}")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise KTMError(f"merger weights {file} are unreadable or corrupt: {e}") from None
    if adapt is not None:
        state = adapt(state, merger)
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise KTMError(f"merger weights {file} hold non-finite values (NaN or inf) in {bad[0]}")
    try:
        merger.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise KTMError(f"merger weights {file} do not match the config: {first}") from None


def load_lora_weights(lm: nn.Module, file: Path) -> None:
    """Copy the LoRA weights of an adapter file into the peft model ``lm``."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise KTMError(f"adapter weights {file} are missing or unreadable: {e}") from None
    result = set_peft_model_state_dict(lm, state)
    if result.unexpected_keys:
        raise KTMError(f"adapter {file} does not fit this model: {result.unexpected_keys[:2]}")


def _check_adapter_config(adapter: Path, config: KTMConfig) -> None:
    """The saved adapter must be the LoRA ``config`` describes (rank), or absent without one."""
    if config.lora_r == 0:
        return
    saved = read_json(adapter / "adapter_config.json", "adapter config")
    r = saved.get("r") if isinstance(saved, dict) else None
    if r != config.lora_r:
        raise KTMError(
            f"{adapter}/adapter_config.json has LoRA rank {r!r} but ktm_config.json says "
            f"lora_r={config.lora_r}; the folder's parts do not match"
        )


class ArtifactsMixin:
    """Save / load methods of a :class:`KTMModel` (mixed into it)."""

    def save_pretrained(self, path: str | Path) -> None:
        """Write the config, the merger (safetensors) and the PEFT adapter to ``path``."""
        from safetensors.torch import save_file

        with atomic_dir(path) as tmp:
            write_json_atomic(
                tmp / CONFIG_NAME,
                {
                    "ktm_version": __version__,
                    "base_model": self.base_model,
                    "base_model_info": base_info(self.causal_lm),
                    "config": self.config.to_dict(),
                },
            )
            state = {k: v.detach().contiguous() for k, v in self.merger.state_dict().items()}
            save_file(state, str(tmp / MERGER_NAME), metadata={"format": "pt"})
            if hasattr(self.lm, "peft_config"):
                self.lm.save_pretrained(str(tmp / ADAPTER_DIR), save_embedding_layers=False)
            if self.token_idf is not None:
                save_file({"idf": self.token_idf.contiguous()}, str(tmp / IDF_NAME))

    def init_from(self, path: str | Path, lora_only: bool = False) -> None:
        """Start from the merger and LoRA weights of the saved model folder ``path``.

        The saved model must match this one: same base model shape, K, merger and LoRA shape
        (its merger may read less context: the extra inputs start at zero weight). With
        ``lora_only`` (a curriculum over K), only the LoRA is taken, so K and the merger may
        differ; the merger keeps its initialisation.
        """
        path = Path(path)
        meta = read_saved_config(path)
        check_base(
            path, meta.get("base_model_info", {}), base_info(self.causal_lm), self.base_model
        )
        other = KTMConfig.from_dict(meta["config"])
        check_same_shape(path, self.config, other, widen=True, lora_only=lora_only)
        if not lora_only:
            load_merger(self.merger, path / MERGER_NAME, widen_context)
        if self.config.lora_r > 0:
            load_lora_weights(self.lm, path / ADAPTER_DIR / ADAPTER_WEIGHTS)
        idf = load_idf(path, base_info(self.causal_lm)["vocab_size"])
        self.token_idf = idf if idf is not None else self.token_idf

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        base_model: str | None = None,
        dtype: torch.dtype | None = None,
        trainable: bool = False,
        causal_lm: nn.Module | None = None,
        tokenizer=None,
    ) -> Self:
        """Load a saved model folder. ``base_model`` overrides the saved base (same shape only)
        and approves it; the saved one is used only if :mod:`ktm.model.trust` allows.

        ``causal_lm``/``tokenizer`` pass an already-loaded base model instead of a name.
        """
        path = Path(path)
        if not path.is_dir():
            raise KTMError(f"checkpoint folder not found: {path}")
        check_links(path)
        meta = read_saved_config(path)
        config = KTMConfig.from_dict(meta["config"])
        name = base_model or meta["base_model"]
        if causal_lm is None and base_model is None:
            check_saved_base(name, path)
        saved_d = meta.get("base_model_info", {}).get("hidden_size")
        if isinstance(saved_d, int) and not isinstance(saved_d, bool):  # before loading anything
            check_merger_file(path / MERGER_NAME, config, saved_d)
        _check_adapter_config(path / ADAPTER_DIR, config)
        if causal_lm is None:
            causal_lm, tokenizer = load_base(name, dtype)
        elif tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        actual = base_info(causal_lm)
        check_base(path, meta.get("base_model_info", {}), actual, name)
        for p in causal_lm.parameters():
            p.requires_grad_(False)
        lm = causal_lm
        if config.lora_r > 0:
            from peft import PeftModel

            adapter = path / ADAPTER_DIR
            try:
                with quiet_peft():
                    lm = PeftModel.from_pretrained(causal_lm, str(adapter), is_trainable=trainable)
            except Exception as e:  # peft raises many types for a broken adapter
                raise KTMError(f"could not load adapter {adapter}: {e}") from None
        if saved_d != actual["hidden_size"]:  # not checked before loading (size not stated)
            check_merger_file(path / MERGER_NAME, config, actual["hidden_size"])
        merger = build_merger(config, actual["hidden_size"])
        load_merger(merger, path / MERGER_NAME)
        merger.requires_grad_(trainable)
        model = cls(lm, tokenizer, merger, config, name)
        model.token_idf = load_idf(path, actual["vocab_size"])
        return model


def load_idf(path: Path, vocab_size: int) -> torch.Tensor | None:
    """The idf table saved in model folder ``path``, checked; None if it has none."""
    from safetensors.torch import load_file

    file = path / IDF_NAME
    if not file.is_file():
        return None
    try:
        idf = load_file(str(file)).get("idf")
    except Exception as e:  # safetensors raises several types for a broken file
        raise KTMError(f"{file} is not a readable safetensors file: {e}") from None
    if idf is None or idf.shape != (vocab_size,) or not torch.isfinite(idf).all():
        raise KTMError(f"{file} must hold a finite 'idf' table of {vocab_size} values")
    return idf.float()
