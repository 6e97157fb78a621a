"""`KTMConfig`: what a K-Token Merging model is (K, merger, LoRA), validated on creation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import KTMError
from .expansion import check_share
from .fields import option

MERGERS = ("mlp", "mean")
MERGER_INITS = ("mean", "random")
MERGER_NORMS = ("none", "token")
POSITIONS = ("compact", "spread")
SCORERS = (
    "auto",
    "idf",
    "prior",
    "selfinfo",
    "query",
)  # token rankings (expansion, curriculum, select pooling): ktm.token_scores, ktm.query_match
POOLS = ("mean", "select")
REDUCTIONS = ("first", "last", "prune", "qprune")  # token-space baselines: tasks.token_budget
DTYPES = ("float32", "bfloat16")  # base-model weight dtypes a run may ask for
# Ranges beyond which a value is a typo or an attack: a model folder's config is checked
# against them before anything is allocated.
LIMITS = (("k", 1, 1024), ("merger_context", 0, 4096), ("merger_layers", 0, 1024),
          ("lora_r", 0, 4096))  # fmt: skip
MAX_HIDDEN_FACTOR = 64.0
CHOICES = (("merger", MERGERS), ("merger_init", MERGER_INITS), ("merger_norm", MERGER_NORMS),
           ("merger_pool", POOLS), ("token_scorer", SCORERS), ("positions", POSITIONS))  # fmt: skip


def paper_hidden_factor(k: int) -> float:
    """The paper's MLP width factor c (h = int(c·K)·d): 2.0 for K ≤ 3, 1.5 above."""
    return 2.0 if k <= 3 else 1.5


@dataclass
class KTMConfig:
    """Configuration of the merger and the LoRA adapter (what a saved model is).

    Each field's help says what it does. The K tokens of a block are merged into one
    embedding; K = 1 is the uncompressed LoRA baseline through the same code. ``positions``
    ``spread`` keeps the KV cache as small as ``compact`` but vLLM serving needs ``compact``.
    """

    k: int = option(4, help="tokens merged into one embedding (1: no merging, the LoRA baseline)")
    merger: str = option(
        "mlp",
        choices=MERGERS,
        help="mlp: the paper's encoder (block mean + MLP over the concatenated block); "
        "mean: parameter-free block mean",
    )
    merger_hidden_factor: float | None = option(
        0.5,
        help="MLP width c in h = int(c*K)*d: 0.5 (h = 2d at K = 4) learns as well as the "
        "paper's width at a third of its cost; none: the paper's 2.0 for K <= 3, 1.5 above",
    )
    merger_init: str = option(
        "mean",
        choices=MERGER_INITS,
        help="mean: the MLP's last layer starts at zero, so the merger starts as the block "
        "mean; random: the paper's init",
    )
    merger_pool: str = option(
        "mean",
        choices=POOLS,
        help="the merged embedding's base, to which the MLP adds: mean: the block mean (the "
        "paper's); select: the block's highest-ranked token (--token-scorer), so an untrained "
        "merger hands the LM real tokens, one per block",
    )
    merger_norm: str = option(
        "none",
        choices=MERGER_NORMS,
        help="token: rescale each merged embedding to its tokens' mean norm; none: the paper's",
    )
    merger_context: int = option(
        0,
        help="tokens before each block the MLP merger also reads (one embedding per K tokens "
        "still; 0: the block alone, the paper's)",
    )
    merger_layers: int = option(
        0,
        help="base-model layers run over the raw prompt before merging: the MLP merger adds "
        "each token's state after them to its embedding, so a block carries what the first "
        "layers computed from the whole prompt (their cost counts in the time to first "
        "token; 0: raw embeddings, the paper's)",
    )
    positions: str = option(
        "compact",
        choices=POSITIONS,
        help="position ids of the merged prefix: compact 0,1,2,... (the paper's; vLLM needs it) "
        "or spread: each block at its last token's position, suffix and answer where they "
        "are uncompressed",
    )
    budget: float | None = option(
        None,
        help="selective expansion: positions a merged prompt may read per prompt token, e.g. "
        "0.3 at K = 4: the highest-ranked tokens stay raw and the rest are merged, in at most "
        "0.3 T positions for T tokens (default: every block merged)",
    )
    token_scorer: str = option(
        "auto",
        choices=SCORERS,
        help="what ranks tokens for selective expansion, the raw-to-merged curriculum and "
        "select pooling: idf: rarity across the training prompts (a template's words score 0; "
        "ktm train fits it on the task's prompts and saves it with the model); prior: -log "
        "p(token | start of text) under the base model (needs no fitting, but ranks a "
        "template's words high); selfinfo: -log p(token | the tokens before it) (a pass of the "
        "base model over the prompt); query: the words the question kept raw after the prompt "
        "names, and the word after each (needs a suffix; the compressed prompt then depends on "
        "the question); auto: idf when the model has its table, else prior",
    )
    lora_r: int = option(8, help="LoRA rank (0: no LoRA)")
    lora_alpha: float = option(32, help="LoRA alpha")
    lora_dropout: float = option(0.0, help="LoRA dropout")
    lora_targets: list[str] | None = option(
        None, help="module names to adapt, comma-separated (default: every linear layer)"
    )
    lora_lm_head: bool = option(
        True, help="also adapt the output layer (the paper's; vLLM needs the LoRA merged then)"
    )

    def __post_init__(self) -> None:
        for name, low, high in LIMITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise KTMError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
        for name in ("merger_hidden_factor", "lora_alpha", "lora_dropout"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and math.isfinite(value)):
                raise KTMError(f"{name} must be a finite number, got {value!r}")
        for name, allowed in CHOICES:
            value = getattr(self, name)
            if value not in allowed:
                raise KTMError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        for name in ("merger_context", "merger_layers"):
            c = getattr(self, name)
            if c and (self.merger != "mlp" or self.k == 1):
                raise KTMError(
                    f"{name}={c} needs the MLP merger at K > 1 (got merger={self.merger!r}, "
                    f"k={self.k}); leave it at 0"
                )
        if self.budget is not None:
            check_share(self.budget)
            if self.k == 1:
                raise KTMError(
                    "budget (selective expansion) needs K > 1: at K = 1 every token is raw"
                )
        f = self.merger_hidden_factor
        if f is not None and not 0 < f <= MAX_HIDDEN_FACTOR:
            raise KTMError(f"merger_hidden_factor must be in (0, {MAX_HIDDEN_FACTOR}], got {f!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise KTMError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.lora_alpha <= 0:
            raise KTMError(f"lora_alpha must be > 0, got {self.lora_alpha!r}")

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
        data = dict(data) if isinstance(data, dict) else data
        if isinstance(data, dict) and "reduction" in data:  # written before ktm 0.1.1
            how = data.pop("reduction")
            data.pop("reduction_k", None)
            if how is not None:
                raise KTMError(
                    f"this model was saved by a token-reduction baseline ({how!r}) of ktm < 0.1.1; "
                    "baselines are now run options (ktm train --reduction): re-run it"
                )
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
