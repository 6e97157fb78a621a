"""`KTMConfig`: what a K-Token Merging model is (K, merger, LoRA), validated on creation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import KTMError

MERGERS = ("mlp", "mean")
MERGER_INITS = ("mean", "random")
MERGER_NORMS = ("none", "token")
POSITIONS = ("compact", "spread")
DTYPES = ("float32", "bfloat16")  # base-model weight dtypes a run may ask for


def paper_hidden_factor(k: int) -> float:
    """The paper's MLP width factor c (h = int(c·K)·d): 2.0 for K ≤ 3, 1.5 above."""
    return 2.0 if k <= 3 else 1.5


@dataclass
class KTMConfig:
    """Configuration of the merger and the LoRA adapter.

    Attributes:
        k: tokens merged into one embedding (K ≥ 1; K = 1 is the uncompressed baseline).
        merger: ``"mlp"`` (the paper's encoder: block mean + MLP over the concatenated block)
            or ``"mean"`` (parameter-free block mean).
        merger_hidden_factor: c in h = int(c·K)·d; ``None`` takes the paper's value.
        merger_init: ``"mean"`` zero-initialises the MLP's last layer so training starts
            exactly at mean pooling; ``"random"`` is the paper's default init.
        merger_norm: ``"token"`` rescales each merged embedding to the mean norm of its
            block's token embeddings (the scale the LM reads); ``"none"`` is the paper's.
        merger_context: tokens before each block that the MLP merger also reads (0, the
            paper's merger, reads the block alone). Blocks still do not overlap in the output:
            one embedding per K tokens; the context only tells the merger what its block
            continues (a word, a line's indentation) that was cut at the block boundary.
        positions: position ids of the compressed prefix. ``"compact"`` (the paper's) numbers
            the merged embeddings 0, 1, 2, …; ``"spread"`` gives each the position of its
            block's last token (K−1, 2K−1, …) and the suffix and answer the positions they
            have in the uncompressed prompt, so every distance the base model knows (a token
            to the prompt text it copies or refers to) keeps its scale. Compression of the
            KV cache is the same; vLLM serving (which numbers prompt embeddings 0, 1, …) needs
            ``"compact"``.
        lora_r, lora_alpha, lora_dropout: LoRA hyper-parameters (paper: 4, 16, 0.05).
        lora_targets: module names to adapt; ``None`` adapts every linear layer of the
            decoder (q, k, v, o, gate, up, down for Llama).
        lora_lm_head: also adapt the output layer (paper: yes; vLLM needs it merged).
        reduction: a token-space baseline instead of merging (``first``, ``last`` or
            ``prune``; see :mod:`ktm.reduction`): keep ⌈T/reduction_k⌉ of the T prompt tokens.
            Needs ``k = 1``.
        reduction_k: the K whose budget the reduction matches.
    """

    k: int = 4
    merger: str = "mlp"
    merger_hidden_factor: float | None = None
    merger_init: str = "mean"
    merger_norm: str = "none"
    merger_context: int = 0
    positions: str = "compact"
    lora_r: int = 4
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    lora_lm_head: bool = True
    reduction: str | None = None
    reduction_k: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise KTMError(f"k must be an integer >= 1, got {self.k!r}")
        if self.merger not in MERGERS:
            raise KTMError(f"merger must be one of {', '.join(MERGERS)}, got {self.merger!r}")
        if self.merger_init not in MERGER_INITS:
            raise KTMError(
                f"merger_init must be one of {', '.join(MERGER_INITS)}, got {self.merger_init!r}"
            )
        if self.merger_norm not in MERGER_NORMS:
            raise KTMError(
                f"merger_norm must be one of {', '.join(MERGER_NORMS)}, got {self.merger_norm!r}"
            )
        c = self.merger_context
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise KTMError(f"merger_context must be an integer >= 0, got {c!r}")
        if c and (self.merger != "mlp" or self.k == 1):
            raise KTMError(
                f"merger_context={c} needs the MLP merger at K > 1 (got merger={self.merger!r}, "
                f"k={self.k}); leave it at 0"
            )
        if self.positions not in POSITIONS:
            raise KTMError(
                f"positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}"
            )
        if self.merger_hidden_factor is not None and not self.merger_hidden_factor > 0:
            raise KTMError(f"merger_hidden_factor must be > 0, got {self.merger_hidden_factor!r}")
        if not isinstance(self.lora_r, int) or self.lora_r < 0:
            raise KTMError(f"lora_r must be an integer >= 0 (0 disables LoRA), got {self.lora_r!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise KTMError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.lora_alpha <= 0:
            raise KTMError(f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        if self.reduction is not None:
            from .reduction import REDUCTIONS

            if self.reduction not in REDUCTIONS:
                raise KTMError(
                    f"reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}"
                )
            if self.k != 1:
                raise KTMError(
                    f"a token reduction reads tokens as they are: k must be 1, not {self.k}"
                )
        if (
            isinstance(self.reduction_k, bool)
            or not isinstance(self.reduction_k, int)
            or self.reduction_k < 1
        ):
            raise KTMError(f"reduction_k must be an integer >= 1, got {self.reduction_k!r}")

    @property
    def hidden_factor(self) -> float:
        return (
            self.merger_hidden_factor
            if self.merger_hidden_factor is not None
            else paper_hidden_factor(self.k)
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KTMConfig":
        return dataclass_from_dict(cls, data, "KTM config")


def dataclass_from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys with a clear error."""
    if not isinstance(data, dict):
        raise KTMError(f"{what} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise KTMError(f"unknown {what} field(s): {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as e:
        raise KTMError(f"bad {what}: {e}") from None
