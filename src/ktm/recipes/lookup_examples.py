"""Lookup examples for pre-training: a chunk of text, then ``Find:`` and two of its tokens —
all of it merged — and as the answer the three tokens that follow them in the chunk.

Reconstruction asks the LM to regenerate a merged prefix in order, position by position; a
task such as the tree's asks it to *find* something in the prefix by content (the question's
names among the merged lines). Lookup asks that on any text, so a general merger can learn it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..model import RECONSTRUCT_MARKER
from ..training.data import Example

LOOKUP_MARKER = "\nFind: "
QUERY_TOKENS = 2
ANSWER_TOKENS = 3
TRIES = 8  # draws of a query position before a chunk keeps its reconstruction example


def lookup_example(tokenizer, chunk: str, rng: random.Random) -> Example | None:
    """A lookup example of ``chunk``, or None when no drawn query occurs in it exactly once."""
    ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
    span = QUERY_TOKENS + ANSWER_TOKENS
    if len(ids) < span:
        return None
    for _ in range(TRIES):
        j = rng.randint(0, len(ids) - span)
        query = tokenizer.decode(ids[j : j + QUERY_TOKENS])
        answer = tokenizer.decode(ids[j + QUERY_TOKENS : j + span])
        if query.strip() and answer.strip() and chunk.count(query) == 1:
            return Example(prompt=chunk + LOOKUP_MARKER + query, answer=answer)
    return None


def mix_lookup(
    examples: Sequence[Example], tokenizer, share: float, seed: int = 0
) -> list[Example]:
    """``examples`` with a ``share`` of them (spread evenly: each one whose running share falls
    behind) posed as lookup instead; only reconstruction examples are replaced, and one whose
    chunk yields no lookup stays as it is."""
    rng, out, taken = random.Random(seed), [], 0
    for i, e in enumerate(examples):
        if e.suffix == RECONSTRUCT_MARKER and taken < share * (i + 1):
            lookup = lookup_example(tokenizer, e.prompt, rng)
            if lookup is not None:
                taken += 1
                out.append(lookup)
                continue
        out.append(e)
    return out
