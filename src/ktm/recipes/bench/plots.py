"""Plots of a bench run: quality vs share of input kept (Pareto front), quality vs compute."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...io_utils import atomic_path

_MARKERS = {
    "merge": "o",
    "merge-pretrained": "*",
    "mean": "s",
    "first": ">",
    "last": "<",
    "prune": "D",
    "qprune": "d",
}


def quality_key(kind: str) -> tuple[str, str, bool]:
    """(metric key, axis label, higher is better) for a task kind."""
    if kind == "generation":
        return "perplexity", "perplexity of the answer (lower is better)", False
    return "balanced_accuracy", "balanced accuracy", True


def pareto_front(points: Sequence[tuple[float, float]], higher_better: bool) -> list[int]:
    """Indices of the points no other point beats on both cost (x, lower is better) and
    quality (y), sorted by cost."""
    sign = 1 if higher_better else -1
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], None
    for i in order:
        q = sign * points[i][1]
        if best is None or q > best:
            front.append(i)
            best = q
    return front


def label_offsets(pixels: Sequence[tuple[float, float]], gap: float = 15.0) -> list[float]:
    """Extra upward offsets (pixels) for the labels of points at display positions
    ``pixels`` so that labels of points less than 60 px apart in x are ``gap`` apart in y
    (arms at the same budget sit on one vertical line and would print over each other)."""
    order = sorted(range(len(pixels)), key=lambda i: pixels[i][1])
    placed: list[tuple[float, float]] = []  # (x, label y) of labels placed so far
    offsets = [0.0] * len(pixels)
    for i in order:
        x, y = pixels[i]
        label_y = y
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(px - x) < 60 and abs(py - label_y) < gap:
                label_y = py + gap
        offsets[i] = label_y - y
        placed.append((x, label_y))
    return offsets


def plot_arms(rows: Sequence[dict], quality: tuple[str, str, bool], out: str | Path) -> None:
    """Write ``pareto.png`` and ``compute.png`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label, higher = quality
    rows = [r for r in rows if r.get(key) is not None]
    flat = [r for r in rows if r["kind"] in ("zeroshot", "majority")]
    points = [r for r in rows if r not in flat]
    out = Path(out)

    for name, xkey, xlabel in (
        ("pareto.png", "kept", "share of input tokens the model reads"),
        (
            "compute.png",
            "compute_minutes",
            "compute time: pre-training + training + evaluation (minutes)",
        ),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
        xs = [
            r["kept"]
            if xkey == "kept"
            else r.get("pretrain_minutes", 0) + r["train_minutes"] + r["eval_minutes"]
            for r in points
        ]
        for r, x in zip(points, xs):
            ax.scatter(x, r[key], marker=_MARKERS.get(r["kind"], "o"), s=45, zorder=3)
        ax.autoscale_view()
        pixels = ax.transData.transform(list(zip(xs, [r[key] for r in points]))) if points else []
        px_per_pt = fig.dpi / 72
        spread = label_offsets([tuple(p) for p in pixels], gap=10 * px_per_pt)
        for r, x, dy in zip(points, xs, spread):
            ax.annotate(r["arm"], (x, r[key]), textcoords="offset points",
                        xytext=(5, 4 + dy / px_per_pt))  # fmt: skip
        if points:
            front = pareto_front(list(zip(xs, [r[key] for r in points])), higher)
            ax.plot(
                [xs[i] for i in front],
                [points[i][key] for i in front],
                "--",
                color="gray",
                zorder=2,
                label="Pareto front",
            )
        for r in flat:  # labelled at the right edge, away from the cheap arms' cluster
            ax.axhline(r[key], linestyle=":", color="black", linewidth=1)
            ax.annotate(r["arm"], (ax.get_xlim()[1], r[key]), xytext=(-3, 3), ha="right",
                        textcoords="offset points")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if points:
            ax.legend(loc="best")
        fig.tight_layout()
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def plot_speed(rows: list[dict], out) -> None:
    """TTFT and speed-up vs prompt length per K (batch size 1 if measured, else the first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    bs = 1 if any(r["batch"] == 1 for r in rows) else rows[0]["batch"]
    sel = [r for r in rows if r["batch"] == bs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for k in sorted({r["k"] for r in sel}):
        pts = sorted((r["tokens"], r["ttft_s"], r["speedup_vs_k1"], r["flops_ratio_vs_k1"])
                     for r in sel if r["k"] == k)  # fmt: skip
        xs = [p[0] for p in pts]
        a.plot(xs, [p[1] for p in pts], "o-", label=f"K = {k}")
        line = b.plot(xs, [p[2] for p in pts], "o-", label=f"K = {k} measured")[0]
        b.plot(xs, [p[3] for p in pts], ":", color=line.get_color(), label=f"K = {k} FLOPs")
    a.set(xscale="log", yscale="log", xlabel="prompt tokens", ylabel="time to first token (s)")
    b.set(xscale="log", xlabel="prompt tokens", ylabel="speed-up vs K = 1")
    lengths = sorted({r["tokens"] for r in sel})
    for ax in (a, b):
        ax.set_xticks(lengths, [f"{n:,}" for n in lengths])  # the measured lengths, no clutter
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"batch size {bs}")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
