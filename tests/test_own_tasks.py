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


def test_located_rows_answer_the_country_of_the_asked_persons_city(script):
    own = script("own_tasks")
    rows = own.rows("located", 40, seed=2, size=6)
    assert rows == own.rows("located", 40, seed=2, size=6)
    assert len({r["answer"] for r in rows}) > 2  # not one country every time
    for r in rows:
        lines = r["doc"].splitlines()
        home = dict(
            re.fullmatch(r"(\w+) lives in (\w+)\.", x).groups() for x in lines if "lives" in x
        )
        country = dict(
            re.fullmatch(r"(\w+) is in (\w+)\.", x).groups() for x in lines if " is in " in x
        )
        assert len(home) == 6 and len(country) == 6
        asked = re.fullmatch(r"Which country does (\w+) live in\?", r["question"]).group(1)
        assert country[home[asked]] == r["answer"]


def test_team_rows_answer_the_team_of_the_asked_persons_manager(script):
    own = script("own_tasks")
    rows = own.rows("team", 40, seed=3, size=6)
    assert rows == own.rows("team", 40, seed=3, size=6)
    assert len({r["answer"] for r in rows}) > 2
    for r in rows:
        lines = r["doc"].splitlines()
        boss = dict(
            re.fullmatch(r"(\w+) reports to (\w+)\.", x).groups() for x in lines if "reports" in x
        )
        team = dict(
            re.fullmatch(r"(\w+) leads the (\w+) team\.", x).groups() for x in lines if "leads" in x
        )
        assert len(boss) == 6 and len(team) == 4
        asked = re.fullmatch(r"Which team is led by the manager of (\w+)\?", r["question"]).group(1)
        assert team[boss[asked]] == r["answer"]
