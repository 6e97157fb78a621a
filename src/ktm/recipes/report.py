"""Plain-text tables of results."""

from __future__ import annotations

from collections.abc import Sequence

PERCENT_KEYS = {
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "f1_true",
    "majority_baseline",
    "kept",
    "exact_match",
    "edit_similarity",
}


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table; ``columns`` are (key, header) pairs; rates shown as percent."""

    def cell(key: str, v) -> str:
        if isinstance(v, float):
            return f"{100 * v:.1f}%" if key in PERCENT_KEYS else f"{v:.4g}"
        return "" if v is None else str(v)

    header = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(k, r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([header, rule, *body])


CLASSIFICATION_COLUMNS = [
    ("balanced_accuracy", "balanced acc"),
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("majority_baseline", "majority baseline"),
    ("n", "examples"),
]


GENERATION_COLUMNS = [
    ("perplexity", "perplexity"),
    ("nll_per_token", "NLL/token"),
    ("exact_match", "exact match"),
    ("edit_similarity", "edit similarity"),
    ("trivial_edit_similarity", "commonest answer: edit sim"),
    ("copy_edit_similarity", "copy of input: edit sim"),
    ("n", "examples"),
    ("generated", "rows generated"),
]


def metric_columns(kind: str) -> list[tuple[str, str]]:
    """The table columns of a task kind (``classification`` or ``generation``)."""
    return GENERATION_COLUMNS if kind == "generation" else CLASSIFICATION_COLUMNS
