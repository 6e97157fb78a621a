"""Question-aware token scores: how strongly the question kept raw after a prompt points at
each of the prompt's tokens (the ``query`` scorer of selective expansion).

A question names what it asks about ("value of amber-basil?", "Is Ab an ancestor of Cd?");
the tokens of the prompt that hold those names, and what follows them, are the ones a merged
block is most likely to blur and the answer most likely to need; and, a hop further, the
words that share a line with them (the link of a chain the question names both ends of, as
multi-hop retrievers follow entities from one passage to the next). Question-aware ranking is
what LongLLMLingua adds to Selective Context for pruning; here it chooses which tokens stay
raw among the merged blocks. The price: the compressed prompt depends on the question, so it
cannot be reused across questions.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import torch

WORD = re.compile(r"\w+")  # letters, digits and _: compared lowercased
SEGMENT_END = re.compile(r"\n|[.!?;](?=\s)")  # where a line or a sentence ends


def question_scores(pieces: Sequence[str], question: str) -> torch.Tensor:
    """(T,) float scores of a prompt's T tokens, given their text ``pieces`` in order.

    First hop: each maximal run of consecutive prompt words that also occurs consecutively in
    the question scores its length over the number of times that run occurs in the prompt, and
    so does every character from its first word to its last ("amber-basil"); the next word (a
    key's "=value") scores half that. A run found on most lines (more than 3/4 of the lines
    or sentences, and more than twice), like a template's "in" or "of", points nowhere and
    scores 0. Second hop, for questions whose answer runs through facts they do not name (an
    ancestor two lines away, the country of a named person's city): a word scores at least
    half the best first-hop score of another word on a line or sentence it stands on, over
    its own count in the prompt, wherever it occurs; and adds half the best score of another
    word on its line, over its own count (so the line that links two named things outranks
    lines naming one). Template words take no part in the second hop. A token scores the best
    of the spans its characters overlap; a token in none scores 0.
    """
    text = "".join(pieces)
    spans = [m.span() for m in WORD.finditer(text)]
    words = [text[a:b].lower() for a, b in spans]  # after the spans: lower() may change lengths
    asked = WORD.findall(question.lower())
    cuts = [m.end() for m in SEGMENT_END.finditer(text)]
    line = [bisect.bisect_right(cuts, a) for a, _ in spans]  # the line or sentence of each word
    template = max(2, len(set(line)) * 3 // 4)  # a run found more often is on most lines
    scored: list[tuple[int, int, float]] = []  # character spans [a, b) and their scores
    hop1 = [0.0] * len(words)
    ends = _common_run_ends(words, asked)
    for i, length in enumerate(ends):
        if length == 0 or (i + 1 < len(ends) and ends[i + 1] == length + 1):
            continue  # no run ends here, or the run goes on
        start = i + 1 - length
        run = words[start : i + 1]
        count = sum(words[s : s + length] == run for s in range(len(words) - length + 1))
        if count > template:
            continue  # a template's word ("in" on every line) points nowhere
        score = length / count
        scored.append((spans[start][0], spans[i][1], score))
        for w in range(start, i + 1):
            hop1[w] = max(hop1[w], score)
        if i + 1 < len(words):
            scored.append((spans[i][1], spans[i + 1][1], score / 2))
            hop1[i + 1] = max(hop1[i + 1], score / 2)
    hop2 = _second_hop(line, words, hop1, template)
    scored += [(a, b, score) for (a, b), score in zip(spans, hop2) if score > 0]
    return _token_scores(pieces, scored)


def _second_hop(
    line: Sequence[int], words: Sequence[str], hop1: Sequence[float], template: int
) -> list[float]:
    """Per word (on its ``line``), its score after the second hop (see :func:`question_scores`);
    a word found more than ``template`` times links nothing and keeps its first-hop score."""
    count = Counter(words)
    hop1_on = _by_line(words, line, hop1)
    reach: defaultdict[str, float] = defaultdict(float)  # a word's strongest line to hop one
    for w, seg in zip(words, line):
        reach[w] = max(reach[w], _best_other(hop1_on[seg], w))
    links = [count[w] <= template for w in words]
    own = [max(s, reach[w] / 2 / count[w] * k) for w, s, k in zip(words, hop1, links)]
    own_on = _by_line(words, line, own)
    return [
        s + _best_other(own_on[seg], w) / 2 / count[w] * k
        for w, seg, s, k in zip(words, line, own, links)
    ]


def _by_line(
    words: Sequence[str], line: Sequence[int], scores: Sequence[float]
) -> defaultdict[int, list[tuple[str, float]]]:
    """Per line, its (word, score) pairs."""
    out: defaultdict[int, list[tuple[str, float]]] = defaultdict(list)
    for w, seg, s in zip(words, line, scores):
        out[seg].append((w, s))
    return out


def _best_other(pairs: Sequence[tuple[str, float]], word: str) -> float:
    """The best score among ``pairs`` of a word other than ``word`` (0 for none)."""
    return max((s for w, s in pairs if w != word), default=0.0)


def question_scores_of_ids(tokenizer, prompt_ids: Sequence[int], question: str) -> torch.Tensor:
    """(T,) :func:`question_scores` of a prompt given as token ids (each decoded alone)."""
    return question_scores(tokenizer.batch_decode([[i] for i in prompt_ids]), question)


def _common_run_ends(words: Sequence[str], asked: Sequence[str]) -> list[int]:
    """Per prompt word, the length of the longest run of words ending there that also occurs
    in ``asked`` (0 when the word is not in it)."""
    prev = [0] * (len(asked) + 1)
    out = []
    for w in words:
        cur = [0] * (len(asked) + 1)
        for j, v in enumerate(asked):
            if w == v:
                cur[j + 1] = prev[j] + 1
        out.append(max(cur))
        prev = cur
    return out


def _token_scores(pieces: Sequence[str], scored: Sequence[tuple[int, int, float]]) -> torch.Tensor:
    """(T,) the best score of the character spans each token overlaps (0 for none)."""
    out = [0.0] * len(pieces)
    bounds = [0]
    for piece in pieces:
        bounds.append(bounds[-1] + len(piece))
    for a, b, score in scored:
        first = bisect.bisect_right(bounds, a) - 1  # the token holding character a
        for t in range(first, len(pieces)):
            if bounds[t] >= b:
                break
            if bounds[t + 1] > a:  # an empty piece overlaps nothing
                out[t] = max(out[t], score)
    return torch.tensor(out)
