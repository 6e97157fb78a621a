"""The error-breakdown script reads each tree prompt's relations correctly."""

from ktm.tasks.tree import generate_split


def test_relations_agree_with_the_generated_labels(script):
    """A pair is labelled true exactly when the script calls it parent; on medium trees every
    other relation occurs too."""
    breakdown = script("tree_error_breakdown")
    test = generate_split("medium", 20, seed=1)
    seen = set()
    for example in test:
        rel = breakdown.relation(example.prompt)
        seen.add(rel)
        assert (rel == "parent") == (example.label == "true"), example.prompt
    assert seen == {"parent", "reverse", "ancestor", "sibling", "other"}


def test_relations_of_a_hand_written_tree(script):
    breakdown = script("tree_error_breakdown")
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
        assert breakdown.relation(tree + ask.format(p, c)) == rel
