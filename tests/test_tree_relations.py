"""How two asked-about nodes relate is read correctly from every tree prompt."""

from ktm.tasks.tree import generate_split
from ktm.tasks.tree_relations import RELATIONS, relation


def test_relations_agree_with_the_generated_labels():
    """A pair is labelled true exactly when `relation` calls it parent; on medium trees every
    other relation occurs too."""
    test = generate_split("medium", 20, seed=1)
    seen = set()
    for example in test:
        rel = relation(example.prompt)
        seen.add(rel)
        assert (rel == "parent") == (example.label == "true"), example.prompt
    assert seen == set(RELATIONS)


def test_relations_of_a_hand_written_tree():
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
        assert relation(tree + ask.format(p, c)) == rel
