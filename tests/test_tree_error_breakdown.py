"""The error-breakdown script reads each tree prompt's relations correctly."""

import importlib.util
from pathlib import Path

from ktm.tasks.tree import generate_split

SCRIPT = Path(__file__).parent.parent / "scripts" / "tree_error_breakdown.py"


def _script():
    spec = importlib.util.spec_from_file_location("tree_error_breakdown", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relations_agree_with_the_generated_labels():
    """A pair is labelled true exactly when the script calls it parent; on medium trees every
    other relation occurs too."""
    script = _script()
    test = generate_split("medium", 20, seed=1)
    seen = set()
    for example in test:
        rel = script.relation(example.prompt)
        seen.add(rel)
        assert (rel == "parent") == (example.label == "true"), example.prompt
    assert seen == {"parent", "reverse", "ancestor", "sibling", "other"}


def test_relations_of_a_hand_written_tree():
    script = _script()
    tree = "Tree: +SI\n++JV\n+++CB\n+++GE\n++ZO, Task: Parent/Child Relationship, "
    ask = "Parent: {}, Child: {}, Answer: "
    cases = {
        ("SI", "JV"): "parent",
        ("JV", "SI"): "reverse",
        ("SI", "GE"): "ancestor",
        ("CB", "GE"): "sibling",
        ("ZO", "CB"): "other",
    }
    for (p, c), rel in cases.items():
        assert script.relation(tree + ask.format(p, c)) == rel
