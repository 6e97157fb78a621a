"""Count how often Selective Context pruning keeps the names a tree question asks about.

python scripts/tree_prune_cues.py --k 4 --out docs/results/tree/prune4-cues.json

Runs the `prune<K>` reduction (self-information under the base model, ⌈T/K⌉ tokens kept) on
the `small` test split of `ktm bench tree` (100 trees, seed as the bench) and counts, per
prompt, whether the question's parent and child names survive after the `Task` part.
"""

import argparse
import json
from collections import Counter

from ktm.io_utils import write_json_atomic
from ktm.model.base_models import load_base
from ktm.recipes.data import DataConfig, load_stages
from ktm.tasks.token_budget import reduce_ids, self_information


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--test-trees", type=int, default=100)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    lm, tokenizer = load_base(args.model)
    lm.eval()
    stages, _ = load_stages(DataConfig(task="tree", test_trees=args.test_trees), tokenizer)
    test = stages[-1].test
    ids = [tokenizer(e.prompt, add_special_tokens=False)["input_ids"] for e in test]
    kept = reduce_ids(ids, "prune", args.k, lambda p: self_information(lm, p))
    counts, examples = Counter(), []
    for e, k in zip(test, kept):
        text = tokenizer.decode(k)
        question = text.split("Task")[-1]
        parent = e.prompt.split("Parent: ")[1].split(",")[0]
        child = e.prompt.split("Child: ")[1].split(",")[0]
        n = (parent in question) + (child in question)
        counts[["neither", "one", "both"][n]] += 1
        if len(examples) < 6:
            examples.append({"prompt": e.prompt, "kept": text})
    result = {"model": args.model, "k": args.k, "prompts": len(test), "asked_names_kept": counts,
              "examples": examples}  # fmt: skip
    write_json_atomic(args.out, result)
    print(json.dumps(result["asked_names_kept"]))


if __name__ == "__main__":
    main()
