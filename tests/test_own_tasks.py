"""scripts/own_tasks.py: the tasks no recipe was tuned on are well-formed and right."""

from __future__ import annotations

import re


def test_lookup_rows_ask_for_a_value_in_their_table(script):
    own = script("own_tasks")
    rows = own.rows("lookup", 20, seed=0, size=12)
    assert rows == own.rows("lookup", 20, seed=0, size=12)  # deterministic
    for r in rows:
        table = dict(line.split("=") for line in r["doc"].splitlines())
        assert len(table) == 12
        key = re.fullmatch(r"value of (.+)\?", r["question"]).group(1)
        assert table[key] == r["answer"] and len(r["answer"]) == 5


def test_ancestor_rows_are_balanced_and_never_a_parent(script):
    own = script("own_tasks")
    rows = own.rows("ancestor", 40, seed=1, size=8)
    assert sum(r["answer"] == "yes" for r in rows) == 20
    for r in rows:
        parent = {}
        for line in r["doc"].splitlines():
            p, c = re.fullmatch(r"(\w+) is the parent of (\w+)\.", line).groups()
            parent[c] = p
        a, b = re.fullmatch(r"Is (\w+) an ancestor of (\w+)\?", r["question"]).groups()
        chain, n = [], b
        while n in parent:
            n = parent[n]
            chain.append(n)
        assert (a in chain[1:]) == (r["answer"] == "yes")


def check_two_hops(own, task: str, hops: tuple[str, str], sizes: tuple[int, int], asked: str):
    """Rows of a two-hop task: both relations parse from the lines (``hops``: their regexes,
    ``sizes``: how many lines each), and the answer is the second hop of the asked name."""
    rows = own.rows(task, 40, seed=2, size=6)
    assert rows == own.rows(task, 40, seed=2, size=6)  # deterministic
    assert len({r["answer"] for r in rows}) > 2  # not one answer every time
    for r in rows:
        first, second = (
            dict(m.groups() for x in r["doc"].splitlines() if (m := re.fullmatch(h, x)))
            for h in hops
        )
        assert (len(first), len(second)) == sizes
        name = re.fullmatch(asked, r["question"]).group(1)
        assert second[first[name]] == r["answer"]


def test_located_rows_answer_the_country_of_the_asked_persons_city(script):
    hops = (r"(\w+) lives in (\w+)\.", r"(\w+) is in (\w+)\.")
    check_two_hops(
        script("own_tasks"), "located", hops, (6, 6), r"Which country does (\w+) live in\?"
    )


def test_team_rows_answer_the_team_of_the_asked_persons_manager(script):
    hops = (r"(\w+) reports to (\w+)\.", r"(\w+) leads the (\w+) team\.")
    asked = r"Which team is led by the manager of (\w+)\?"
    check_two_hops(script("own_tasks"), "team", hops, (6, 4), asked)


def test_raw_kept_counts_what_each_arm_keeps_and_whether_the_answer_is_in_it(script, tiny_base):
    own, kept = script("own_tasks"), script("own_task_raw_kept")
    lm, tokenizer = tiny_base()
    rows = own.rows("lookup", 6, seed=0, size=6)
    ids = [tokenizer(r["doc"])["input_ids"] for r in rows]
    least = sum(-(-len(p) // 4) for p in ids) / len(rows)
    merged = kept.expansion_arm(tokenizer, rows, ids, 4, 0.25)  # K = 4's own positions
    assert merged["positions"] == least and merged["raw_tokens"] < 1  # only free raw tokens
    wide = kept.expansion_arm(tokenizer, rows, ids, 4, 0.6)
    assert wide["answer_raw"] == 1.0  # the asked key's value is the ranking's top
    assert least < wide["positions"] <= sum(int(0.6 * len(p)) for p in ids) / len(rows)
    pruned = kept.qprune_arm(lm, tokenizer, rows, ids, 3)
    assert pruned["raw_tokens"] == sum(-(-len(p) // 3) for p in ids) / len(rows)
    assert pruned["answer_raw"] == 1.0
    assert kept.answer_kept([5, 7, 8, 7, 8], [1, 1, 0, 1, 1], [[7, 8]])
    assert not kept.answer_kept([5, 7, 8], [1, 1, 0], [[9], [7, 8]])
