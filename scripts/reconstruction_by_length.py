"""How well pre-trained mergers let the LM regenerate text of several lengths.

`ktm pretrain` reports its held-out loss on chunks of the lengths it trains on. A task's
prompts have their own lengths, so this cuts the same texts into chunks of each length asked
for and writes each model's reconstruction loss (nats per token, EOS included) per length.

    python scripts/reconstruction_by_length.py runs/corpus/general.jsonl MODEL [MODEL ...] \
        --lengths 24,40,64,96 --texts 60 --chunks 48 --out by-length.json

MODEL is a saved model (`RUN/model`) or a checkpoint (`RUN/checkpoints/step-N`).
Used in lab/general-merger.md §3.7.
"""

import argparse
import sys
from pathlib import Path

import torch

from ktm.io_utils import write_json_atomic
from ktm.recipes.pretrain_text import (
    read_texts,
    reconstruction_examples,
    reconstruction_nll,
    text_chunks,
)

sys.path.insert(0, str(Path(__file__).parent))
from prompt_reconstruction import load  # noqa: E402  (a sibling script)


def by_length(model, texts: list[str], lengths: list[int], chunks: int) -> dict[int, float]:
    """Reconstruction loss of ``model`` on ``chunks`` chunks of each length (one length each)."""
    out = {}
    for n in lengths:
        pieces = text_chunks(model.tokenizer, texts, n, chunks)
        out[n] = reconstruction_nll(model, reconstruction_examples(pieces))["reconstruction_nll"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", help="a .txt or .jsonl file of texts (e.g. the general corpus)")
    parser.add_argument("models", nargs="+", help="saved models or checkpoints")
    parser.add_argument("--lengths", default="24,40,64,96", help="chunk lengths in tokens")
    parser.add_argument("--texts", type=int, default=60, help="texts read from the file's start")
    parser.add_argument("--chunks", type=int, default=48, help="chunks per length")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    texts = read_texts([args.text])[: args.texts]
    rows = []
    for path in args.models:
        model = load(path, getattr(torch, args.dtype))
        model.eval()
        losses = by_length(model, texts, lengths, args.chunks)
        rows.append({"model": path, "k": model.k, "reconstruction_nll": losses})
        print(path, {n: round(v, 3) for n, v in losses.items()}, flush=True)
    write_json_atomic(
        args.out,
        {"command": " ".join(sys.argv), "text": args.text, "texts": len(texts), "rows": rows},
    )


if __name__ == "__main__":
    main()
