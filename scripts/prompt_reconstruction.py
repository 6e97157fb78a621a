"""How well pre-trained mergers let the LM repeat a task's own prompts from their merged prefix.

`ktm pretrain` reports reconstruction on held-out chunks of its own text, cut at any token.
A task compresses whole prompts, blocks starting at the prompt's first token. This measures
that case: for each model (a `ktm pretrain` output, its `model/`, or a checkpoint), the test
prompts of a `ktm train` run's last stage are merged and the LM must repeat them after the
reconstruction marker; it writes the loss per token (EOS included) and the share of prompts
that greedy decoding repeats exactly (for the tree task, also by how the asked-about nodes
relate).

    python scripts/prompt_reconstruction.py RUN MODEL [MODEL ...] --limit 100 --out rec.json

Used in lab/learnability.md §2.23.
"""

import argparse
import collections
from pathlib import Path

import torch

from ktm.config import KTMConfig
from ktm.io_utils import read_json, write_json_atomic
from ktm.model import CONFIG_NAME, RECONSTRUCT_MARKER, KTMModel
from ktm.recipes.data import load_stages
from ktm.recipes.pretrain_text import reconstruction_examples, reconstruction_nll
from ktm.recipes.run_config import RunConfig
from ktm.recipes.start import init_from, model_folder
from ktm.tasks.tree_relations import relation


def load(path: str, dtype: torch.dtype) -> KTMModel:
    """A saved model, or a training checkpoint (``RUN/checkpoints/step-N``), built from RUN's
    config."""
    if (model_folder(path) / CONFIG_NAME).is_file():
        return KTMModel.from_pretrained(path, dtype=dtype)
    run = read_json(Path(path).parent.parent / "config.json", "run config")
    model = KTMModel.from_base(run["model"], KTMConfig.from_dict(run["ktm"]), dtype)
    init_from(model, path)
    return model


def repeated(model: KTMModel, prompts: list[str], batch_size: int = 16) -> list[bool]:
    """Whether greedy decoding repeats each prompt character for character.

    What follows the repeated prompt is ignored: a merger pre-trained on chunks that span
    several prompts goes on into a next one instead of stopping.
    """
    hits = []
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i : i + batch_size]
        longest = max(len(ids) for ids in model.tokenize(batch))
        outs = model.generate(
            batch, suffixes=[RECONSTRUCT_MARKER] * len(batch), max_new_tokens=longest + 2
        )
        hits += [out.strip().startswith(p.strip()) for out, p in zip(outs, batch, strict=True)]
    return hits


def share_by(hits: list[bool], groups: list[str]) -> dict[str, dict]:
    """Share of hits per group: {group: {"repeated", "n", "share"}}."""
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for hit, group in zip(hits, groups, strict=True):
        counts[group][0] += hit
        counts[group][1] += 1
    return {
        g: {"repeated": h, "n": n, "share": round(h / n, 4)} for g, (h, n) in sorted(counts.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a `ktm train --task …` folder whose test prompts to use")
    parser.add_argument("models", nargs="+", help="pre-trained model folders or checkpoints")
    parser.add_argument("--limit", type=int, default=100, help="test prompts to use")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    cfg = RunConfig.from_dict(read_json(Path(args.run) / "config.json", "run config"))
    stages, _ = load_stages(cfg.data)
    prompts = [e.prompt + (e.suffix or "") for e in stages[-1].test[: args.limit]]
    rows = []
    for path in args.models:
        model = load(path, getattr(torch, cfg.dtype))
        hits = repeated(model, prompts)
        row = {
            "model": path,
            "k": model.k,
            **reconstruction_nll(model, reconstruction_examples(prompts)),
            "exact_share": round(sum(hits) / len(hits), 4),
        }
        if cfg.data.task == "tree":  # which questions come back wrong
            row["exact_share_by_relation"] = share_by(hits, [relation(p) for p in prompts])
        rows.append(row)
        print(row, flush=True)
    write_json_atomic(
        args.out, {"run": args.run, "stage": stages[-1].name, "prompts": len(prompts), "rows": rows}
    )


if __name__ == "__main__":
    main()
