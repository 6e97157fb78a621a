"""Training throughput per K: prompt tokens (before compression) per second.

Every arm trains on the same batches; steps are interleaved across arms so that machine
noise hits them alike. A step is what the trainer does: forward with answer-only logits,
backward, gradient clipping, AdamW.
"""

from __future__ import annotations

import statistics
import time

import torch

from ...config import KTMConfig
from ...model import KTMModel
from ...tasks.tree import generate_split
from ...training.trainer import make_optimizer


def train_speed_benchmark(
    base: str,
    ks: list[int],
    steps: int = 10,
    warmup: int = 2,
    batch_size: int = 16,
    stage: str = "small",
    dtype: torch.dtype = torch.float32,
    lora_dropout: float = 0.0,
    seed: int = 0,
    merger_hidden_factor: float | None = 0.5,
    lora_r: int = 8,
    lora_alpha: float = 32,
) -> list[dict]:
    rows = generate_split(stage, max(200, batch_size * (steps + warmup)), seed, balance=True)
    arms = {}
    for k in ks:
        torch.manual_seed(seed)
        model = KTMModel.from_base(
            base,
            KTMConfig(
                k=k,
                lora_r=lora_r,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
                merger_hidden_factor=merger_hidden_factor,
            ),
            dtype=dtype,
        )
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        arms[k] = (model, params, make_optimizer([{"params": params, "lr": 1e-4}], 0.0))
    first = next(iter(arms.values()))[0]
    prompts, _ = first.encode_prompts([r.prompt for r in rows])
    answers = first.encode_answers([r.label for r in rows])
    times: dict[int, list[float]] = {k: [] for k in ks}
    tokens: list[int] = []
    for step in range(warmup + steps):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        p, a = prompts[sl], answers[sl]
        if step >= warmup:
            tokens.append(sum(len(x) for x in p))
        for k, (model, params, opt) in arms.items():
            t0 = time.perf_counter()
            with model.training_attention():
                loss = model.answer_nll(p, a) / sum(len(x) for x in a)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step >= warmup:
                times[k].append(time.perf_counter() - t0)
    k1 = min(ks)
    out = []
    for k in ks:
        tok_s = sum(tokens) / sum(times[k])
        out.append(
            {
                "k": k,
                "batch": batch_size,
                "stage": stage,
                "dtype": str(dtype).split(".")[-1],
                "lora_dropout": lora_dropout,
                "merger_hidden_factor": merger_hidden_factor,
                "steps": steps,
                "median_step_s": round(statistics.median(times[k]), 4),
                "prompt_tokens_per_s": round(tok_s, 1),
                f"speedup_vs_k{k1}": round(sum(times[k1]) / sum(times[k]), 3),
            }
        )
    return out
