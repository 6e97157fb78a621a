"""How the two nodes a Textualized Tree question asks about relate in its tree.

Used to break a run's accuracy, or a merger's prompt reconstruction, down by relation
(``scripts/tree_error_breakdown.py``, ``scripts/prompt_reconstruction.py``): the
label is ``true`` only for ``parent``; the ``false`` pairs differ in how hard they are to
tell from it (a grandparent needs the depth of both nodes, a reversed pair their order).
"""

from __future__ import annotations

RELATIONS = ("parent", "reverse", "ancestor", "sibling", "other")


def parents(prompt: str) -> dict[str, str | None]:
    """Each node's parent (None for the root), read from a prompt's ``+``-indented tree."""
    lines = prompt.split(", Task")[0].removeprefix("Tree: ").split("\n")
    parent: dict[str, str | None] = {}
    path: list[str] = []
    for line in lines:
        depth, name = line.count("+"), line.strip(" +")
        path = path[: depth - 1]
        parent[name] = path[-1] if path else None
        path.append(name)
    return parent


def relation(prompt: str) -> str:
    """One of :data:`RELATIONS`: how the prompt's ``Parent`` and ``Child`` nodes relate.

    ``ancestor`` is two or more levels up; ``other`` is any pair not named before (cousins,
    an uncle and a nephew, descendants two levels down).
    """
    parent = parents(prompt)
    p = prompt.split("Parent: ")[1].split(",")[0]
    c = prompt.split("Child: ")[1].split(",")[0]
    if parent.get(c) == p:
        return "parent"
    if parent.get(p) == c:
        return "reverse"
    up, node = set(), parent.get(c)
    while node:
        up.add(node)
        node = parent.get(node)
    if p in up:
        return "ancestor"
    return "sibling" if parent.get(p) == parent.get(c) else "other"
