"""Time to first token and prefill time per K, measured side by side in one process.

For each prompt length and K, the same base model reads the same prompt: K = 1 through the
identity merger, K > 1 through a fresh paper-sized MLP merger; LoRA adapters are attached
(unmerged, as trained) so the timings include them. Repeats are interleaved across K so
machine noise hits all arms alike; medians are reported, with ratios against K = 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...config import KTMConfig
from ...errors import KTMError
from ...model import KTMModel
from ...packing import merged_length
from ...tasks.tree import STAGES, random_tree
from .memory import PeakMemory


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
    state: tuple | None = None  # (batch, hidden, cache) when kept for decoding

    @property
    def ttft_s(self) -> float:
        return self.merge_s + self.prefill_s


@torch.inference_mode()
def time_first_token(
    model: KTMModel,
    prompt_ids: list[list[int]],
    suffix_ids: list[list[int]] | None = None,
    keep: bool = False,
) -> PrefillTiming:
    """Compress (embed + merge), run the decoder with a cache, pick the
    first token. ``keep`` returns the prefilled state so decoding can go on from it."""
    model.eval()
    t0 = time.perf_counter()
    batch = model.compress_ids(prompt_ids, suffix_ids)
    t1 = time.perf_counter()
    hidden, cache = model.hidden_states(batch, use_cache=True)
    model.head(hidden[:, -1]).argmax(-1)
    t2 = time.perf_counter()
    return PrefillTiming(t1 - t0, t2 - t1, (batch, hidden, cache) if keep else None)


def cache_bytes(cache) -> int:
    """Bytes held by a transformers KV cache (keys and values of every layer)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


@torch.inference_mode()
def time_decode(
    model: KTMModel, prompt_ids: list[list[int]], steps: int, prefilled: tuple | None = None
) -> tuple[float, int]:
    """(seconds per decode step after the prefill, KV-cache bytes after the prefill).

    ``prefilled`` is a :class:`PrefillTiming`'s kept state; without it the prompt is prefilled
    here first (untimed)."""
    from ...packing import CompressedBatch

    model.eval()
    if prefilled is None:
        batch = model.compress_ids(prompt_ids)
        hidden, cache = model.hidden_states(batch, use_cache=True)
    else:
        batch, hidden, cache = prefilled
    kv = cache_bytes(cache)
    mask, pos = batch.attention_mask, batch.position_ids[:, -1:]
    b = len(prompt_ids)
    nxt = model.head(hidden[:, -1]).argmax(-1)
    t0 = time.perf_counter()
    for _ in range(steps):
        mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
        pos = pos + 1
        step = CompressedBatch(model.embed(nxt[:, None]), mask, pos, [], [])
        hidden, cache = model.hidden_states(step, past_key_values=cache, use_cache=True)
        nxt = model.head(hidden[:, -1]).argmax(-1)
    return (time.perf_counter() - t0) / steps, kv


def merger_flops(model: KTMModel, tokens: int, positions: int | None = None) -> float:
    """Forward FLOPs of the merger over one prompt's blocks (2·params per block): ⌈tokens/K⌉,
    or at most ``positions`` with selective expansion; with ``merger_layers`` L, also the
    base model's first L layers over all ``tokens`` raw tokens (linear layers and attention)."""
    blocks = merged_length(tokens, model.k) if positions is None else positions
    flops = 2 * blocks * sum(p.numel() for p in model.merger.parameters())
    if model.k > 1 and model.config.merger_layers:
        from ...model.prompt_states import layer_list

        first = layer_list(model.decoder)[: model.config.merger_layers]
        params = sum(p.numel() for n, p in first.named_parameters() if "lora" not in n)
        d = model.causal_lm.config.get_text_config().hidden_size
        flops += 2 * tokens * params + len(first) * 4 * tokens * tokens * d
    return flops


def prefill_flops(model: KTMModel, tokens: int, positions: int | None = None) -> float:
    """Forward FLOPs of one prompt's prefill at ``positions`` read (default ⌈tokens/K⌉):
    2·params per position in the linear layers, the two attention matmuls (4·n²·d per
    layer), and the merger's MLP over the blocks."""
    cfg = model.causal_lm.config.get_text_config()
    d, layers = cfg.hidden_size, cfg.num_hidden_layers
    embed = model.causal_lm.get_input_embeddings().weight.numel()
    linear = sum(p.numel() for n, p in model.causal_lm.named_parameters() if "lora" not in n)
    linear -= embed  # the input embedding is a lookup; the output layer is counted once below
    n = merged_length(tokens, model.k) if positions is None else positions
    flops = 2 * n * linear + 2 * embed + layers * 4 * n * n * d  # logits only at the last one
    return flops + merger_flops(model, tokens, positions)


def build_arms(
    base: str, ks: list[int], dtype: torch.dtype = torch.float32, **config
) -> dict[int, KTMModel]:
    """One KTMModel per K (paper-sized merger, LoRA attached and unmerged). ``config`` holds
    other :class:`KTMConfig` fields; ``merger_context``, ``merger_layers`` and ``budget`` apply
    only where K > 1."""
    arms = {}
    for k in ks:
        torch.manual_seed(0)
        cfg = {
            **config,
            "merger_context": config.get("merger_context", 0) if k > 1 else 0,
            "merger_layers": config.get("merger_layers", 0) if k > 1 else 0,
            "budget": config.get("budget") if k > 1 else None,
        }
        arms[k] = KTMModel.from_base(base, KTMConfig(k=k, merger_init="random", **cfg), dtype)
    return arms


def prefill_benchmark(
    arms: dict[int, KTMModel],
    lengths: list[int],
    batch_sizes: list[int],
    repeats: int = 5,
    warmup: int = 1,
    decode_steps: int = 16,
    on_cell: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """TTFT, prefill, merger share, decode speed, KV-cache size and the prefill's peak memory
    per (length, batch, K), repeats interleaved across K; ratios against the smallest K
    (normally 1). ``on_cell(rows_so_far)`` runs after each (length, batch) cell, so a long
    grid can save as it goes."""
    rows = []
    any_model = next(iter(arms.values()))
    context, k_min = any_model.max_positions, min(arms)
    for length in lengths:
        if context is not None and merged_length(length, k_min) + decode_steps > context:
            raise KTMError(
                f"prompt length {length} at K = {k_min} + {decode_steps} decode steps exceeds "
                f"the model's context of {context} positions; use shorter --lengths"
            )
    for length in lengths:
        ids = filler_ids(any_model, length)
        for bs in batch_sizes:
            prompts = [ids] * bs
            times: dict[int, list[PrefillTiming]] = {k: [] for k in arms}
            decode: dict[int, list[float]] = {k: [] for k in arms}
            peak: dict[int, list[int]] = {k: [] for k in arms}
            kv: dict[int, int] = {}
            # Warm-up passes only in the first cell: they warm the allocator and kernels, and at
            # 8,192 tokens one more pass costs minutes.
            skip = warmup if not rows else 0
            for r in range(skip + repeats):
                for k, model in arms.items():  # interleaved
                    last = r == skip + repeats - 1  # decode is timed once, from the last prefill
                    with PeakMemory() as mem:
                        t = time_first_token(model, prompts, keep=last or r < skip)
                    if t.state is not None:
                        step_s, kv[k] = time_decode(model, prompts, decode_steps, t.state)
                        t.state = None  # free the cache before the next arm
                    if r >= skip:
                        times[k].append(t)
                        if last:
                            decode[k].append(step_s)
                        if mem.peak_bytes is not None:
                            peak[k].append(mem.peak_bytes)
            ref = min(arms)
            base_ttft = statistics.median(t.ttft_s for t in times[ref])
            base_decode = statistics.median(decode[ref])
            with torch.no_grad():
                read = {k: m.compress_ids([ids]).tokens_out[0] for k, m in arms.items()}
            base_flops = prefill_flops(arms[ref], length, read[ref])
            for k, ts in times.items():
                flops = prefill_flops(arms[k], length, read[k])
                ttft = statistics.median(t.ttft_s for t in ts)
                merge = statistics.median(t.merge_s for t in ts)
                step_s = statistics.median(decode[k])
                rows.append(
                    {
                        "tokens": length,
                        "batch": bs,
                        "k": k,
                        "positions": read[k],
                        "ttft_s": round(ttft, 5),
                        "merge_s": round(merge, 5),
                        "prefill_s": round(statistics.median(t.prefill_s for t in ts), 5),
                        "merger_share": round(merge / ttft, 4),
                        # the share the merger's FLOPs alone imply: the floor of merger_share
                        "merger_flops_share": round(
                            merger_flops(arms[k], length, read[k]) / flops, 4
                        ),
                        "speedup_vs_k1": round(base_ttft / ttft, 3),
                        "flops_ratio_vs_k1": round(base_flops / flops, 3),
                        "decode_tokens_per_s": round(bs / step_s, 2),
                        "decode_vs_k1": round(base_decode / step_s, 3),
                        "kv_cache_bytes": kv[k],
                        "kv_cache_mib": round(kv[k] / 2**20, 3),
                        "prefill_peak_mib": (round(max(peak[k]) / 2**20, 1) if peak[k] else None),
                    }
                )
            if on_cell is not None:
                on_cell(rows)
    return rows
