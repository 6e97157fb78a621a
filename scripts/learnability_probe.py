"""Learnability probe: quick K = 4 training variants on the tree task outside the main engine.

Used for the ablations in lab/learnability.md that the library does not offer as options
(they did not help): a per-block token-decoding auxiliary loss at an early layer
(--decode-weight, --decode-layer), progressive merging that starts at K = 1 and merges a
growing share of blocks (--hold, --ramp), and full fine-tuning instead of LoRA (--full).
Same data as `ktm bench tree` (2,000 balanced small trees, seed 1; 200 test examples of 100
trees, seed 2), batch 16, cosine schedule. Writes one JSON line per step to --out; lines with
"bal" carry the balanced accuracy of the fully merged (K = 4) model.

    python scripts/learnability_probe.py --steps 800 --out probe-base.jsonl
    python scripts/learnability_probe.py --steps 800 --decode-weight 1 --out dec.jsonl
    python scripts/learnability_probe.py --steps 800 --hold 150 --ramp 400 --out prog.jsonl
    python scripts/learnability_probe.py --full --lr 5e-5 --dtype float32 --out full.jsonl
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from ktm.config import KTMConfig
from ktm.model import KTMModel
from ktm.packing import block_index
from ktm.recipes.evaluate import evaluate_classification
from ktm.tasks.tree import TreeTask, generate_split
from ktm.training.data import SampleOrder
from ktm.training.trainer import make_optimizer, tokenize_examples

ap = argparse.ArgumentParser()
ap.add_argument("--k", type=int, default=4)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--r", type=int, default=8)
ap.add_argument("--decode-weight", type=float, default=0.0)
ap.add_argument("--decode-layer", type=int, default=4)
ap.add_argument("--eval-every", type=int, default=100)
ap.add_argument("--out", required=True)
ap.add_argument("--dtype", default="bfloat16")
ap.add_argument("--stage", default="small")
ap.add_argument("--warmup", type=int, default=10)
ap.add_argument("--full", action="store_true")
ap.add_argument("--hold", type=int, default=0)
ap.add_argument("--ramp", type=int, default=0)
ap.add_argument("--posmode", default="compact")
args = ap.parse_args()

torch.manual_seed(0)
cfg = KTMConfig(
    k=args.k, lora_r=0 if args.full else args.r, lora_alpha=2 * args.r * 2, lora_dropout=0.0
)
model = KTMModel.from_base("smollm2-135m", cfg, dtype=getattr(torch, args.dtype))
if args.full:
    emb = model.causal_lm.get_input_embeddings().weight
    for _n, p in model.causal_lm.named_parameters():
        if p is not emb:
            p.requires_grad_(True)
train_rows = generate_split(args.stage, 2000, 1, balance=True)
test_rows = generate_split(args.stage, 100, 2)[:200]
task = TreeTask()
data = tokenize_examples(model, [e.to_example() for e in train_rows])
order = SampleOrder(len(train_rows), 0)
d = model.merger.hidden_size
heads = None
params = [
    {
        "params": [p for n, p in model.named_parameters() if p.requires_grad],
        "lr": args.lr,
        "base_lr": args.lr,
    }
]
if args.decode_weight:
    heads = torch.nn.Parameter(torch.eye(d).repeat(args.k, 1, 1))  # (K, d, d) slot readers
    params.append({"params": [heads], "lr": args.lr, "base_lr": args.lr})
opt = make_optimizer(params, 0.0)
norm = model.decoder.norm
E = model.causal_lm.get_input_embeddings().weight  # tied, frozen
log = open(args.out, "w")


def mixed_pack(prompts, answers, p):
    """Each block merged with probability p, else kept as K token positions."""
    seqs, starts = [], []
    for ids, a in zip(prompts, answers):
        parts = []
        for j in range(0, len(ids), args.k):
            blk = ids[j : j + args.k]
            e = model.embed(torch.tensor(blk))
            if torch.rand(()) < p:
                pad = torch.cat([e, e.new_zeros(args.k - len(blk), e.shape[1])])
                mask = torch.arange(args.k) < len(blk)
                parts.append(model.merger(pad[None], mask[None]))
            else:
                parts.append(e)
        parts.append(model.embed(torch.tensor(a)))
        seq = torch.cat(parts)
        seqs.append(seq)
        starts.append(seq.shape[0] - len(a))
    w = max(s.shape[0] for s in seqs)
    d = seqs[0].shape[1]
    emb = torch.zeros(len(seqs), w, d, dtype=seqs[0].dtype)
    mask = torch.zeros(len(seqs), w, dtype=torch.long)
    ans = []
    for i, s in enumerate(seqs):
        emb[i, w - s.shape[0] :] = s
        mask[i, w - s.shape[0] :] = 1
        ans.append(w - s.shape[0] + starts[i])
    pos = (mask.cumsum(1) - 1).clamp_min(0)
    return emb, mask, pos, ans


def step_loss(prompts, answers, p=1.0):
    if p < 1.0:
        emb, mask, pos, ans = mixed_pack(prompts, answers, p)
        out = model.decoder(inputs_embeds=emb, attention_mask=mask, position_ids=pos)
        h = out.last_hidden_state
        rows, cols, tg = [], [], []
        for i, (s, a) in enumerate(zip(ans, answers)):
            rows += [i] * len(a)
            cols += range(s - 1, s - 1 + len(a))
            tg += a
        logits = model.head(h[rows, cols]).float()
        return F.cross_entropy(logits, torch.tensor(tg)), torch.zeros(())
    batch = model.compress_ids(prompts, None, answers)
    if args.posmode == "sparse":
        batch.position_ids = batch.position_ids * args.k + (args.k - 1)
    out = model.decoder(
        inputs_embeds=batch.embeds,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        output_hidden_states=bool(heads is not None),
    )
    h = out.last_hidden_state
    rows, cols, tg = [], [], []
    for i, (s, a) in enumerate(zip(batch.answer_start, batch.answer_ids)):
        rows += [i] * len(a)
        cols += range(s - 1, s - 1 + len(a))
        tg += a
    logits = model.head(h[rows, cols]).float()
    task_loss = F.cross_entropy(logits, torch.tensor(tg))
    dec = torch.zeros(())
    if heads is not None:
        hl = out.hidden_states[args.decode_layer]  # (B, N, d)
        r2, c2 = [], []
        for i, p in enumerate(prompts):
            n = -(-len(p) // args.k)
            first = batch.answer_start[i] - n
            r2 += [i] * n
            c2 += range(first, first + n)
        states = hl[r2, c2].float()  # (M, d)
        idx = block_index([len(p) for p in prompts], args.k)
        flat = torch.tensor([t for p in prompts for t in p] + [-100])
        targets = flat[idx]  # (M, K), -1 -> -100
        x = torch.einsum("md,kde->mke", states, heads)
        x = norm(x.to(h.dtype)).float()
        lg = x @ E.float().T
        dec = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-100)
    return task_loss, dec


model.train()
t0 = time.time()
with model.training_attention():
    for step in range(args.steps):
        f = min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * f
        idx = order.take(step * 16, 16)
        prompts, answers, _ = data.select(idx)
        p = (
            0.0
            if step < args.hold
            else (min(1.0, (step - args.hold) / args.ramp) if args.ramp else 1.0)
        )
        tl, dl = step_loss(prompts, answers, p)
        (tl + args.decode_weight * dl).backward()
        torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
        opt.step()
        opt.zero_grad()
        rec = {
            "step": step + 1,
            "task": round(tl.item(), 4),
            "decode": round(dl.item(), 4),
            "t": round(time.time() - t0, 1),
            "p": round(p, 3),
        }
        if (step + 1) % args.eval_every == 0:
            model.eval()
            m = evaluate_classification(model, task, test_rows, 32)
            model.train()
            rec["bal"] = round(m["balanced_accuracy"], 4)
            print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
        log.flush()
