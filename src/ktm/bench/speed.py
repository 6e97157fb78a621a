"""Time to first token and prefill time per K, measured side by side in one process.

For each prompt length and K, the same base model reads the same prompt: K = 1 through the
identity merger, K > 1 through a fresh paper-sized MLP merger; LoRA adapters are attached
(unmerged, as trained) so the timings include them. Repeats are interleaved across K so
machine noise hits all arms alike; medians are reported, with ratios against K = 1.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..config import KTMConfig
from ..model import KTMModel
from ..tasks.tree import STAGES, random_tree


def filler_ids(model: KTMModel, length: int, seed: int = 0) -> list[int]:
    """``length`` token ids of rendered random trees (deterministic)."""
    import random

    rng, ids = random.Random(seed), []
    while len(ids) < length:
        ids += model.tokenize([random_tree(STAGES["x3large"], rng).render()])[0]
    return ids[:length]


@dataclass
class PrefillTiming:
    merge_s: float
    prefill_s: float

    @property
    def ttft_s(self) -> float:
        return self.merge_s + self.prefill_s


@torch.inference_mode()
def time_first_token(
    model: KTMModel, prompt_ids: list[list[int]], suffix_ids: list[list[int]] | None = None
) -> PrefillTiming:
    """Compress (embed + merge, or a token reduction), run the decoder with a cache, pick the
    first token."""
    model.eval()
    t0 = time.perf_counter()
    batch = model.compress_ids(prompt_ids, suffix_ids)
    t1 = time.perf_counter()
    hidden, _ = model.hidden_states(batch, use_cache=True)
    model.head(hidden[:, -1]).argmax(-1)
    t2 = time.perf_counter()
    return PrefillTiming(t1 - t0, t2 - t1)


def build_arms(
    base: str, ks: list[int], dtype: torch.dtype = torch.float32, **config
) -> dict[int, KTMModel]:
    """One KTMModel per K (paper-sized merger, LoRA attached and unmerged)."""
    arms = {}
    for k in ks:
        torch.manual_seed(0)
        arms[k] = KTMModel.from_base(base, KTMConfig(k=k, merger_init="random", **config), dtype)
    return arms


def prefill_benchmark(
    arms: dict[int, KTMModel],
    lengths: list[int],
    batch_sizes: list[int],
    repeats: int = 5,
    warmup: int = 1,
) -> list[dict]:
    rows = []
    any_model = next(iter(arms.values()))
    for length in lengths:
        ids = filler_ids(any_model, length)
        for bs in batch_sizes:
            prompts = [ids] * bs
            times: dict[int, list[PrefillTiming]] = {k: [] for k in arms}
            for r in range(warmup + repeats):
                for k, model in arms.items():  # interleaved
                    t = time_first_token(model, prompts)
                    if r >= warmup:
                        times[k].append(t)
            base_ttft = statistics.median(t.ttft_s for t in times[min(arms)])
            for k, ts in times.items():
                ttft = statistics.median(t.ttft_s for t in ts)
                merge = statistics.median(t.merge_s for t in ts)
                rows.append(
                    {
                        "tokens": length,
                        "batch": bs,
                        "k": k,
                        "positions": -(-length // k),
                        "ttft_s": round(ttft, 5),
                        "merge_s": round(merge, 5),
                        "prefill_s": round(statistics.median(t.prefill_s for t in ts), 5),
                        "merger_share": round(merge / ttft, 4),
                        "speedup_vs_k1": round(base_ttft / ttft, 3),
                    }
                )
    return rows
