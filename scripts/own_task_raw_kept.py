"""How many prompt tokens stay raw, and how often the answer is among them, for an own task.

python scripts/own_task_raw_kept.py runs/own/team/test.jsonl --k 4 --budgets 0.35,0.5 \
    --prune-k 3 --out lab/runs/general-merger/own-team-raw-kept.json

For each test row (``doc``, ``question``, ``answer``; ``scripts/own_tasks.py``): selective
expansion with ``--token-scorer query`` at K and each budget (the question raw after the
document; the same ranking and choice as ``ktm``'s, :func:`ktm.expansion.choose_raw`), and
``qprune<K>`` (the question's ranking, ties by the base model's self-information, ⌈T/K⌉
tokens). Reports, per arm, the mean raw document tokens, the mean positions the document
reads, and the share of rows whose answer is kept raw somewhere.
"""

from __future__ import annotations

import argparse
import json
import sys

from ktm.expansion import budget_positions, choose_raw, expanded_length
from ktm.io_utils import write_json_atomic
from ktm.model.base_models import load_base
from ktm.query_match import question_scores_of_ids
from ktm.tasks.token_budget import reduce_ids, self_information


def answer_kept(ids: list[int], kept: list[bool], answers: list[list[int]]) -> bool:
    """Whether some occurrence in ``ids`` of one of the ``answers`` (token ids) has every
    token kept."""
    return any(
        ids[i : i + len(a)] == a and all(kept[i : i + len(a)])
        for a in answers
        for i in range(len(ids) - len(a) + 1)
    )


def expansion_arm(tokenizer, rows: list[dict], ids: list[list[int]], k: int, budget: float):
    """Mean raw tokens, positions and answer-kept share of ``k<k>@<budget>``, ``query``."""
    raw_n = positions = hits = 0
    for r, p in zip(rows, ids):
        scores = question_scores_of_ids(tokenizer, p, "\n" + r["question"])
        raw = choose_raw(scores, k, budget_positions(len(p), k, budget, None))
        raw_n += sum(raw)
        positions += expanded_length(len(p), k, raw)
        hits += answer_kept(p, raw, _answer_ids(tokenizer, r))
    n = len(rows)
    return {"raw_tokens": raw_n / n, "positions": positions / n, "answer_raw": hits / n}


def qprune_arm(lm, tokenizer, rows: list[dict], ids: list[list[int]], k: int):
    """The same figures for ``qprune<k>``: the ⌈T/k⌉ kept tokens, the rest dropped."""
    asked = [question_scores_of_ids(tokenizer, p, "\n" + r["question"]) for r, p in zip(rows, ids)]
    cut = reduce_ids(ids, "qprune", k, lambda x: self_information(lm, x), asked)
    hits = 0
    for r, kept_ids in zip(rows, cut):  # the kept tokens in order: the answer's run or not
        hits += answer_kept(kept_ids, [True] * len(kept_ids), _answer_ids(tokenizer, r))
    n = len(rows)
    raw = sum(map(len, cut)) / n
    return {"raw_tokens": raw, "positions": raw, "answer_raw": hits / n}


def _answer_ids(tokenizer, row: dict) -> list[list[int]]:
    """The answer's ids after a space (a word: `team`, `located`) and after a symbol
    (a lookup's ``key=value``)."""
    text = str(row["answer"])
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (" " + text, text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test_file")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--budgets", default="0.35")
    parser.add_argument("--prune-k", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    lm, tokenizer = load_base(args.model)
    lm.eval()
    rows = [json.loads(line) for line in open(args.test_file, encoding="utf-8") if line.strip()]
    ids = [tokenizer(r["doc"])["input_ids"] for r in rows]
    arms = {}
    for b in (float(x) for x in args.budgets.split(",")):
        arms[f"k{args.k}@{b:g}"] = expansion_arm(tokenizer, rows, ids, args.k, b)
    arms[f"qprune{args.prune_k}"] = qprune_arm(lm, tokenizer, rows, ids, args.prune_k)
    out = {
        "command": " ".join(["python", "scripts/own_task_raw_kept.py", *sys.argv[1:]]),
        "model": args.model,
        "rows": len(rows),
        "document_tokens": sum(map(len, ids)) / len(rows),
        "arms": arms,
    }
    write_json_atomic(args.out, out)
    for name, a in arms.items():
        print(f"{name}: {a['raw_tokens']:.1f} raw, {a['positions']:.1f} positions, "
              f"answer raw {a['answer_raw']:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
