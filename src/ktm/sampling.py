"""Next-token choice: greedy, or sampling with temperature, top-k and top-p."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import KTMError
from .fields import option


@dataclass
class SamplingConfig:
    """How generation picks tokens. Greedy unless ``do_sample``."""

    max_new_tokens: int = option(32, help="tokens to generate at most (stops earlier at EOS)")
    do_sample: bool = option(False, flag="sample", help="sample instead of greedy decoding")
    temperature: float = option(1.0, help="sampling temperature")
    top_k: int = option(0, help="sample from the k most likely tokens (0: all)")
    top_p: float = option(1.0, help="sample from the smallest set of tokens with this mass")
    seed: int | None = option(None, help="seed of the sampling")

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise KTMError(f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if not self.temperature > 0:
            raise KTMError(f"temperature must be > 0, got {self.temperature!r}")
        if self.top_k < 0:
            raise KTMError(f"top_k must be >= 0 (0 disables it), got {self.top_k!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise KTMError(f"top_p must be in (0, 1], got {self.top_p!r}")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or not 0 <= seed < 2**63):  # fmt: skip
            raise KTMError(f"seed must be an integer in [0, 2**63), got {seed!r}")


def choose_next(
    logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick one token per row. logits: (B, V) -> (B,) long."""
    if not cfg.do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already cover top_p.
        drop = (cum - sorted_logits.softmax(dim=-1)) >= cfg.top_p
        drop[..., 0] = False  # the most likely token always stays (top_p near 0 is greedy)
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
