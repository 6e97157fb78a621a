"""Tasks no ktm recipe was tuned on, written as JSONL for ``--task custom``:

- ``lookup``: exact recall. A table of N ``key=value`` pairs (keys: two words, values: five
  random characters), then "value of KEY?" → the value. Scored by exact match.
- ``ancestor``: multi-hop structure. A family list "X is the parent of Y." (one line per
  edge, shuffled) of a random tree, then "Is A an ancestor of B?" → yes / no; the yes pairs
  are ancestors two or more generations up (never the parent), the no pairs anything else.
- ``located``: two hops, a named answer. Shuffled lines "X lives in CITY." and "CITY is in
  COUNTRY." (invented countries), then "Which country does X live in?" → the country. The
  question names only the start of the chain. Scored by exact match.
- ``team``: two hops through people (written after the ``query`` ranking's second hop was
  tuned on ``ancestor`` and ``located``, to test it untuned). Shuffled lines "X reports to
  M." and "M leads the WORD team.", then "Which team is led by the manager of X?" → WORD.

Each file has ``doc`` (the table or the list), ``question`` and ``answer`` fields, so the
question can be kept raw (``--suffix-template "{question}"``) or merged with the rest:

    python scripts/own_tasks.py lookup runs/own/lookup --train 2000 --test 200
    ktm bench custom --train-file runs/own/lookup/train.jsonl \\
        --test-file runs/own/lookup/test.jsonl --template "{doc}\\n{question}" \\
        --answer-field answer --arms k1,k4,first4,last4,prune4,majority --out runs/own-lookup
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

WORDS = (
    "amber basil cedar delta ember fable grove harbor iris jade kestrel lumen maple nectar "
    "onyx pepper quill raven sable thistle umber violet willow yarrow zephyr"
).split()
COUNTRIES = "Norland Estavia Morvia Queltan Drosk Valmere Tarquin Obrena".split()
NAMES = [a + b for a in string.ascii_uppercase for b in string.ascii_lowercase]  # Ab, Ac, …


def lookup_row(rng: random.Random, pairs: int) -> dict:
    keys = rng.sample([f"{a}-{b}" for a in WORDS for b in WORDS if a != b], pairs)
    values = ["".join(rng.choices(string.ascii_uppercase + string.digits, k=5)) for _ in keys]
    asked = rng.randrange(pairs)
    doc = "\n".join(f"{k}={v}" for k, v in zip(keys, values))
    return {"doc": doc, "question": f"value of {keys[asked]}?", "answer": values[asked]}


def ancestor_row(rng: random.Random, nodes: int, want_yes: bool) -> dict | None:
    names = rng.sample(NAMES, nodes)
    parent = {names[i]: names[rng.randrange(i)] for i in range(1, nodes)}

    def ancestors(n: str) -> list[str]:
        out = []
        while n in parent:
            n = parent[n]
            out.append(n)
        return out

    pairs = [(a, b) for b in names for a in ancestors(b)[1:]]  # two or more generations up
    if want_yes:
        if not pairs:
            return None
        a, b = rng.choice(pairs)
    else:
        a, b = rng.sample(names, 2)
        if a in ancestors(b)[1:]:
            return None
    edges = [f"{p} is the parent of {c}." for c, p in parent.items()]
    rng.shuffle(edges)
    answer = "yes" if want_yes else "no"
    return {"doc": "\n".join(edges), "question": f"Is {a} an ancestor of {b}?", "answer": answer}


def located_row(rng: random.Random, people: int) -> dict:
    names = rng.sample(NAMES, people)
    cities = [w.capitalize() for w in rng.sample(WORDS, people)]
    countries = rng.sample(COUNTRIES, 4)
    home = {n: rng.choice(cities) for n in names}
    country = {c: rng.choice(countries) for c in cities}
    lines = [f"{n} lives in {c}." for n, c in home.items()]
    lines += [f"{c} is in {k}." for c, k in country.items()]
    rng.shuffle(lines)
    asked = rng.choice(names)
    return {
        "doc": "\n".join(lines),
        "question": f"Which country does {asked} live in?",
        "answer": country[home[asked]],
    }


MANAGERS = 4  # team: each leads one team; the staff report to them


def team_row(rng: random.Random, people: int) -> dict:
    names = rng.sample(NAMES, people + MANAGERS)
    staff, managers = names[:people], names[people:]
    teams = [w.capitalize() for w in rng.sample(WORDS, len(managers))]
    boss = {n: rng.choice(managers) for n in staff}
    lines = [f"{n} reports to {m}." for n, m in boss.items()]
    lines += [f"{m} leads the {t} team." for m, t in zip(managers, teams)]
    rng.shuffle(lines)
    asked = rng.choice(staff)
    return {
        "doc": "\n".join(lines),
        "question": f"Which team is led by the manager of {asked}?",
        "answer": teams[managers.index(boss[asked])],
    }


def rows(task: str, n: int, seed: int, size: int) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < n:
        if task == "lookup":
            out.append(lookup_row(rng, size))
        elif task == "located":
            out.append(located_row(rng, size))
        elif task == "team":
            out.append(team_row(rng, size))
        else:
            row = ancestor_row(rng, size, want_yes=len(out) % 2 == 0)
            if row is not None:
                out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=("lookup", "ancestor", "located", "team"))
    parser.add_argument("out", help="folder for train.jsonl and test.jsonl")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="pairs (24), nodes (8), people (6; team: staff, beside 4 managers)",
    )
    args = parser.parse_args()
    size = args.size or {"lookup": 24, "ancestor": 8, "located": 6, "team": 6}[args.task]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", args.train, 0), ("test", args.test, 1)):
        with open(out / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows(args.task, n, seed, size))
    print(f"{args.train} training and {args.test} test rows of {args.task} written to {out}")


if __name__ == "__main__":
    main()
