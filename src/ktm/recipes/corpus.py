"""The general pre-training corpus: broad offline text a base model's merger learns to read
once, before any task (``ktm pretrain --corpus general``).

Sources, each a share of the rows, interleaved so that any prefix of the file is a mix:

- ``prose``: docstrings of the Python standard library's modules, classes and functions,
  read from its source files (English technical prose; PSF-2.0 licence);
- ``trees``: Textualized Tree prompts of every curriculum stage up to ``xmedium``, generated
  with seeds no task run uses (ktm's own generator);
- ``tables``: records as ``key: value`` lines and CSV rows with random fields (generated);
- ``reviews``: the training split of ``$KTM_DATA_DIR/amazon_reviews`` when present (real
  Amazon reviews; research use, see that folder's README);
- ``code``: the old files of the training split of ``$KTM_DATA_DIR/commitpack`` when
  present (permissively licensed Python repositories, see that folder's README).

No test split of any benchmark is read.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from ..errors import KTMError
from ..io_utils import write_text_atomic
from ..tasks.tree import generate_split

PIECE_CHARS = 1000
CHARS_PER_SOURCE = 500_000
CORPORA = ("general",)
TREE_SEEDS = 5000  # task runs draw trees with seeds 0 (train) and 1 (test)
TREE_STAGES = ("small", "xsmall", "medium", "xmedium")
WORDS = (
    "red blue green amber silver north south east west river stone cloud maple cedar "
    "falcon otter tiger lotus ember harbor meadow canyon delta orbit quartz velvet"
).split()
FIELDS = (
    "id name city colour size weight price status owner score level code year month "
    "team region model rank count label"
).split()


def stdlib_docstrings(limit: int) -> list[str]:
    """Up to ``limit`` docstrings of 200+ characters from the standard library's sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "test" in path.parts[-2:] or path.name.startswith("test"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        nodes = [tree] + [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)
        ]
        for node in nodes:
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 200:
                out.append(doc)
                if len(out) >= limit:
                    return out
    return out


def tree_prompts(limit: int) -> list[str]:
    """One prompt per distinct tree, over the stages, from seeds no task run uses."""
    out: list[str] = []
    per_stage = -(-limit // len(TREE_STAGES))
    for i, stage in enumerate(TREE_STAGES):
        seen: set[str] = set()
        for example in generate_split(stage, per_stage, TREE_SEEDS + i):
            tree = example.prompt.split(", Task:")[0]
            if tree not in seen:  # one question per tree: the text is about the trees
                seen.add(tree)
                out.append(example.prompt)
    return out[:limit]


def tables(limit: int, rng: random.Random) -> list[str]:
    """Random records, as ``key: value`` lines or as CSV with a header row."""
    out = []
    for _ in range(limit):
        fields = rng.sample(FIELDS, rng.randint(3, 8))
        rows = rng.randint(2, 12)

        def value() -> str:
            kind = rng.random()
            if kind < 0.4:
                return str(rng.randint(0, 99999))
            if kind < 0.7:
                return rng.choice(WORDS)
            return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(5))

        if rng.random() < 0.5:
            lines = [", ".join(f"{f}: {value()}" for f in fields) for _ in range(rows)]
        else:
            lines = [",".join(fields)] + [",".join(value() for _ in fields) for _ in range(rows)]
        out.append("\n".join(lines))
    return out


def jsonl_field(path: Path, field: str, limit: int) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            text = json.loads(line).get(field)
            if isinstance(text, str) and text.strip():
                out.append(text)
                if len(out) >= limit:
                    break
    return out


def data_sources(data_dir: str | None, per_source: int) -> dict[str, list[str]]:
    """The benchmark training splits under ``data_dir`` that are present."""
    found: dict[str, list[str]] = {}
    if not data_dir:
        return found
    reviews = Path(data_dir) / "amazon_reviews" / "train.jsonl"
    code = Path(data_dir) / "commitpack" / "train.jsonl"
    if reviews.is_file():
        found["reviews"] = jsonl_field(reviews, "text", per_source)
    if code.is_file():
        found["code"] = jsonl_field(code, "old_contents", per_source)
    return found


def pieces(text: str, max_chars: int) -> list[str]:
    """``text`` cut at line ends into pieces of at most about ``max_chars`` characters."""
    out, current = [], ""
    for line in text.splitlines(keepends=True):
        if current and len(current) + len(line) > max_chars:
            out.append(current)
            current = ""
        current += line
    return out + [current] if current.strip() else out


def balanced(texts: list[str], chars: int, rng: random.Random) -> list[str]:
    """Shuffled pieces of ``texts`` up to ``chars`` characters, so no source dominates."""
    cut = [p for t in texts for p in pieces(t, PIECE_CHARS) if p.strip()]
    rng.shuffle(cut)
    out, total = [], 0
    for p in cut:
        if total >= chars:
            break
        out.append(p)
        total += len(p)
    return out


def interleave(sources: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    """Rows taken in turn from each source until all are spent."""
    columns = [[{"text": t, "source": name} for t in texts] for name, texts in sources.items()]
    for row in itertools.chain.from_iterable(itertools.zip_longest(*columns)):
        if row is not None:
            yield row


def general_texts(
    chars_per_source: int = CHARS_PER_SOURCE, data_dir: str | None = None, seed: int = 0
) -> tuple[list[str], dict[str, int]]:
    """The general corpus: about ``chars_per_source`` characters of each source, in pieces of
    at most ~1,000 characters, interleaved; and the characters taken per source.

    ``data_dir`` defaults to ``$KTM_DATA_DIR``; without it the corpus has no reviews or code.
    Deterministic for a seed and the same data.
    """
    if chars_per_source < PIECE_CHARS:
        raise KTMError(f"chars_per_source must be >= {PIECE_CHARS}, got {chars_per_source}")
    rng = random.Random(seed)
    rows_wanted = chars_per_source // 50 + 1  # more raw texts than the budget needs
    raw = {
        "prose": stdlib_docstrings(rows_wanted),
        "trees": tree_prompts(rows_wanted // 2),
        "tables": tables(rows_wanted // 4, rng),
        **data_sources(data_dir or os.environ.get("KTM_DATA_DIR"), rows_wanted),
    }
    sources = {name: balanced(texts, chars_per_source, rng) for name, texts in raw.items()}
    texts = [row["text"] for row in interleave(sources)]
    return texts, {name: sum(map(len, pieces_)) for name, pieces_ in sources.items()}


def build_corpus(out: str | Path, **options) -> dict[str, int]:
    """Write :func:`general_texts` as JSONL (``{"text": ...}`` per line) to ``out``, e.g. to
    read it; returns the characters per source."""
    texts, counts = general_texts(**options)
    write_text_atomic(Path(out), "".join(json.dumps({"text": t}) + "\n" for t in texts))
    return counts
