"""Write unlabeled Textualized Tree prompts as JSONL text for `ktm pretrain --text`.

One prompt per distinct tree of the `small`, `xsmall` and `medium` stages, drawn with seeds
1000-1002 (task runs use 0 for training and 1 for testing), shuffled; labels are dropped.
Used for the tree-text pre-training arm in lab/learnability.md §2.5:

    python scripts/tree_pretrain_text.py runs/tree-text.jsonl
"""

import argparse
import json
import random

from ktm.tasks.tree import generate_split

STAGES = (("small", 6000, 1000), ("xsmall", 3000, 1001), ("medium", 2000, 1002))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSONL file to write ({'text': prompt} per line)")
    args = parser.parse_args()
    rows = []
    for stage, trees, seed in STAGES:
        seen = set()
        for example in generate_split(stage, trees, seed):
            tree = example.prompt.split(", Task:")[0]
            if tree not in seen:  # one question per tree: the text is about the trees
                seen.add(tree)
                rows.append({"text": example.prompt})
    random.Random(0).shuffle(rows)
    with open(args.out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    print(f"{len(rows)} prompts written to {args.out}")


if __name__ == "__main__":
    main()
