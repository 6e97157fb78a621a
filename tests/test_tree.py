import pytest

from ktm.errors import KTMError
from ktm.tasks.metrics import classification_metrics
from ktm.tasks.tree import STAGES, generate_split, random_tree, tree_examples


def test_generator_is_deterministic():
    a = generate_split("medium", 20, seed=5)
    b = generate_split("medium", 20, seed=5)
    assert a == b
    assert a != generate_split("medium", 20, seed=6)


@pytest.mark.parametrize("name", list(STAGES))
def test_trees_respect_stage_limits(name):
    import random

    stage = STAGES[name]
    rng = random.Random(0)
    for _ in range(20):
        tree = random_tree(stage, rng)
        assert len(tree.names) <= stage.max_nodes
        assert max(tree.depth) <= stage.max_depth
        assert len(set(tree.names)) == len(tree.names)
        assert all(len(n) == 2 and n.isupper() for n in tree.names)
        for i, p in enumerate(tree.parent):
            if p is not None:  # depth-first rendering: parent comes first, one level up
                assert p < i and tree.depth[p] == tree.depth[i] - 1


def test_examples_are_all_ordered_pairs_with_correct_labels():
    import random

    tree = random_tree(STAGES["medium"], random.Random(1))
    rows = tree_examples(tree)
    n = len(tree.names)
    assert len(rows) == n * (n - 1)
    assert sum(r.label == "true" for r in rows) == n - 1  # one parent per non-root node
    first = rows[0].prompt
    assert first.startswith("Tree: +") and "Task: Parent/Child Relationship, Parent: " in first
    assert first.endswith("Answer: ")


def test_split_question_keeps_the_same_text():
    import random

    tree = random_tree(STAGES["xmedium"], random.Random(2))
    whole, split = tree_examples(tree)[0], tree_examples(tree, split_question=True)[0]
    assert split.prompt + split.suffix == whole.prompt
    assert split.suffix.startswith(", Task:")


def test_balance_gives_equal_classes_and_skew_without():
    rows = generate_split("medium", 50, seed=0, balance=True)
    assert sum(r.label == "true" for r in rows) * 2 == len(rows)
    natural = generate_split("medium", 50, seed=0)
    assert sum(r.label == "true" for r in natural) / len(natural) < 0.2


def test_unknown_stage():
    with pytest.raises(KTMError, match="stage"):
        generate_split("huge", 3, 0)


def test_metrics_expose_the_majority_trap():
    golds = ["false"] * 95 + ["true"] * 5
    always_false = ["false"] * 100
    m = classification_metrics(always_false, golds, positive="true")
    assert m["accuracy"] == 0.95 and m["majority_baseline"] == 0.95
    assert m["balanced_accuracy"] == 0.5 and m["f1_true"] == 0.0
    perfect = classification_metrics(golds, golds, positive="true")
    assert perfect["balanced_accuracy"] == 1.0 and perfect["f1_true"] == 1.0
