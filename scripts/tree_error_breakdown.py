"""Where a trained tree run goes wrong: test accuracy by how the two asked-about nodes relate.

Loads the run's test split the way `ktm train` did (from RUN/config.json), classifies it with
RUN/model, and writes accuracy per relation of (Parent, Child) in the tree — parent (label
true), reverse (child above parent), ancestor two or more levels up, sibling, other — and per
label:

    python scripts/tree_error_breakdown.py runs/s7-med-k4-from-small --out breakdown.json

Used in lab/learnability.md §2.11.
"""

import argparse
import collections
from pathlib import Path

import torch

from ktm.io_utils import read_json, write_json_atomic
from ktm.model import KTMModel
from ktm.recipes.data import load_stages
from ktm.recipes.evaluate import predict_labels
from ktm.recipes.run_config import RunConfig
from ktm.tasks.tree import TREE_LABELS
from ktm.tasks.tree_relations import relation


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
