"""Textualized Tree: is P the parent of C in a tree written one node per line?

Each line is a node's name behind as many ``+`` as its depth (the root has depth 1).
Every ordered pair of distinct nodes is one example: ``true`` iff the first is the parent
of the second. ``true`` becomes rare as trees grow (a skewed metric; see the design notes),
so every report carries balanced accuracy and the majority baseline beside accuracy.
"""

from __future__ import annotations

import itertools
import random
import string
from dataclasses import dataclass

from ..errors import KTMError
from .base import ClassificationTask, LabeledExample, register_task

TREE_LABELS = ("true", "false")


@dataclass(frozen=True)
class TreeStage:
    """Curriculum stage: size limits of its random trees."""

    name: str
    max_depth: int
    max_nodes: int
    min_children: int
    max_children: int


STAGES: dict[str, TreeStage] = {
    s.name: s
    for s in (
        TreeStage("small", 2, 3, 0, 2),
        TreeStage("xsmall", 3, 5, 0, 2),
        TreeStage("medium", 3, 10, 0, 3),
        TreeStage("xmedium", 4, 15, 1, 3),
        TreeStage("large", 4, 30, 1, 3),
        TreeStage("x3large", 4, 150, 3, 5),
    )
}


def get_stage(name: str) -> TreeStage:
    if name not in STAGES:
        raise KTMError(f"unknown tree stage {name!r}; stages: {', '.join(STAGES)}")
    return STAGES[name]


@dataclass
class Tree:
    names: list[str]  # in rendering (depth-first) order
    depth: list[int]  # 1 for the root
    parent: list[int | None]  # index into names

    def render(self) -> str:
        return "\n".join("+" * d + n for n, d in zip(self.names, self.depth))


_ALL_NAMES = ["".join(p) for p in itertools.product(string.ascii_uppercase, repeat=2)]


def random_tree(stage: TreeStage, rng: random.Random) -> Tree:
    """Grow a tree breadth-first: each node below ``max_depth`` gets a uniform number of
    children in [min_children, max_children], until ``max_nodes``. Names are distinct."""
    children: dict[int, list[int]] = {0: []}
    depth = {0: 1}
    frontier, count = [0], 1
    while frontier and count < stage.max_nodes:
        node = frontier.pop(0)
        if depth[node] >= stage.max_depth:
            continue
        for _ in range(rng.randint(stage.min_children, stage.max_children)):
            if count >= stage.max_nodes:
                break
            children[node].append(count)
            children[count], depth[count] = [], depth[node] + 1
            frontier.append(count)
            count += 1
    names = rng.sample(_ALL_NAMES, count)
    order: list[int] = []
    stack = [0]
    while stack:  # depth-first, children in creation order
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(children[node]))
    pos = {node: i for i, node in enumerate(order)}
    parent_of = {c: p for p, cs in children.items() for c in cs}
    return Tree(
        names=[names[n] for n in order],
        depth=[depth[n] for n in order],
        parent=[pos[parent_of[n]] if n in parent_of else None for n in order],
    )


def tree_prompt(tree_text: str, parent: str, child: str) -> str:
    """The paper's prompt."""
    return (
        f"Tree: {tree_text}, Task: Parent/Child Relationship, Parent: {parent}, "
        f"Child: {child}, Answer: "
    )


def tree_examples(tree: Tree, split_question: bool = False) -> list[LabeledExample]:
    """Every ordered pair of distinct nodes. With ``split_question`` the tree is the
    compressed prompt and the question stays uncompressed as the suffix."""
    text = tree.render()
    rows = []
    for i, j in itertools.permutations(range(len(tree.names)), 2):
        label = "true" if tree.parent[j] == i else "false"
        p, c = tree.names[i], tree.names[j]
        if split_question:
            full = tree_prompt(text, p, c)
            cut = len(f"Tree: {text}")
            rows.append(LabeledExample(full[:cut], label, full[cut:]))
        else:
            rows.append(LabeledExample(tree_prompt(text, p, c), label))
    return rows


def generate_split(
    stage: TreeStage | str,
    n_trees: int,
    seed: int,
    balance: bool = False,
    split_question: bool = False,
) -> list[LabeledExample]:
    """Examples of ``n_trees`` random trees (trees of one node are redrawn).

    ``balance`` keeps every ``true`` pair and an equal number of ``false`` pairs drawn at
    random, so both classes are equally frequent. Deterministic for a seed.
    """
    stage = get_stage(stage) if isinstance(stage, str) else stage
    if n_trees < 1:
        raise KTMError(f"number of trees must be >= 1, got {n_trees}")
    rng = random.Random(seed)
    rows: list[LabeledExample] = []
    made = 0
    while made < n_trees:
        tree = random_tree(stage, rng)
        if len(tree.names) < 2:
            continue
        rows.extend(tree_examples(tree, split_question))
        made += 1
    if balance:
        pos = [r for r in rows if r.label == "true"]
        neg = [r for r in rows if r.label == "false"]
        rows = pos + rng.sample(neg, min(len(pos), len(neg)))
        rng.shuffle(rows)
    return rows


class TreeTask(ClassificationTask):
    def __init__(self) -> None:
        super().__init__(name="tree", labels=TREE_LABELS, positive="true")


register_task("tree", TreeTask)
