"""Where a trained tree run goes wrong: test accuracy by how the two asked-about nodes relate.

Loads the run's test split the way `ktm train` did (from RUN/config.json), classifies it with
RUN/model, and writes accuracy per relation of (Parent, Child) in the tree — parent (label
true), reverse (child above parent), ancestor two or more levels up, sibling, other — and per
label:

    python scripts/tree_error_breakdown.py runs/s7-med-k4-from-small --out breakdown.json

Used in docs/learnability.md §2.11.
"""

import argparse
import collections
from pathlib import Path

import torch

from ktm.evaluation import predict_labels
from ktm.io_utils import read_json, write_json_atomic
from ktm.model import KTMModel
from ktm.runs import RunConfig, load_stages
from ktm.tasks.tree import TREE_LABELS


def parents(prompt: str) -> dict[str, str | None]:
    """Each node's parent, read from the prompt's ``+``-indented tree."""
    lines = prompt.split(", Task")[0].removeprefix("Tree: ").split("\n")
    parent: dict[str, str | None] = {}
    path: list[str] = []
    for line in lines:
        depth, name = line.count("+"), line.strip(" +")
        path = path[: depth - 1]
        parent[name] = path[-1] if path else None
        path.append(name)
    return parent


def relation(prompt: str) -> str:
    """How the prompt's Parent and Child nodes relate in its tree."""
    parent = parents(prompt)
    p = prompt.split("Parent: ")[1].split(",")[0]
    c = prompt.split("Child: ")[1].split(",")[0]
    if parent.get(c) == p:
        return "parent"
    if parent.get(p) == c:
        return "reverse"
    up, node = set(), parent.get(c)
    while node:
        up.add(node)
        node = parent.get(node)
    if p in up:
        return "ancestor"
    return "sibling" if parent.get(p) == parent.get(c) else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a `ktm train --task tree` output folder")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    run = Path(args.run)
    cfg = RunConfig.from_dict(read_json(run / "config.json", "run config"))
    stages, _ = load_stages(cfg.data)
    stage = stages[-1]
    test = stage.test
    model = KTMModel.from_pretrained(run / "model", dtype=getattr(torch, cfg.dtype))
    preds = predict_labels(model, test, TREE_LABELS, progress=True)
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for example, pred in zip(test, preds, strict=True):
        question = example.prompt + (example.suffix or "")  # --split-question runs
        for key in (relation(question), f"label={example.label}"):
            counts[key][0] += pred == example.label
            counts[key][1] += 1
    result = {
        "run": str(run),
        "k": cfg.ktm.k,
        "stage": stage.name,
        "examples": len(test),
        "accuracy_by_group": {
            k: {"correct": c, "n": n, "accuracy": round(c / n, 4)}
            for k, (c, n) in sorted(counts.items())
        },
    }
    write_json_atomic(args.out, result)
    for k, v in result["accuracy_by_group"].items():
        print(f"{k:12s} {v['correct']:4d}/{v['n']:<4d} {v['accuracy']:.3f}")


if __name__ == "__main__":
    main()
