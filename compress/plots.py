"""Report figures in one consistent style; PNG bytes are reproducible for the same rows."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from compress.analysis import DOCUMENT_STUDENT_ACCURACY, Compared, by_spec, mean_std
from compress.fileio import write_atomic

STYLE = {
    "figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "compress",
}
FAMILY_COLORS = {
    "baseline": "#333333", "quantization": "#1f77b4", "pruning": "#d62728",
    "distillation": "#2ca02c", "fine-tuning": "#9467bd", "clustering": "#ff7f0e",
}


def _save(figure: plt.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def _averaged(
    items: list[Compared], cost: Callable[[Compared], float]
) -> list[tuple[str, str, float, float]]:
    """(label, family, mean cost, mean accuracy %) per spec."""
    out = []
    for group in by_spec(items).values():
        row = group[0].row
        out.append((row["strategy"], row["family"],
                    mean_std([cost(i) for i in group])[0],
                    mean_std([i.row["accuracy"] * 100 for i in group])[0]))
    return out


def accuracy_tradeoff(items: list[Compared], path: Path, *, cost: str) -> None:
    """Accuracy against size or latency, with the Pareto frontier drawn and labelled."""
    if cost == "size":
        value, label = (lambda i: i.row["size_bytes"] / 1024), "TFLite size (KB"
    else:
        value, label = (lambda i: i.row["latency_us_p50"]), "Batch-1 latency p50 (µs"
        items = [i for i in items if i.row.get("latency_us_p50")]
    points = _averaged(items, value)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        labels: dict[tuple[float, float], tuple[float, float, list[str]]] = {}
        for name, family, x, y in points:
            axes.scatter(x, y, s=36, zorder=3, color=FAMILY_COLORS.get(family, "#7f7f7f"))
            key = (round(math.log10(x), 2), round(y, 1))  # points that coincide share a label
            labels.setdefault(key, (x, y, []))[2].append(name)
        for x, y, names in labels.values():
            axes.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(5, 4),
                          fontsize=7)
        front = pareto_front([(x, y) for _, _, x, y in points])
        if front:
            xs, ys = zip(*front, strict=True)
            axes.step(xs, ys, where="post", color="#555555", linestyle="--", linewidth=1,
                      label="Pareto frontier", zorder=2)
            axes.legend(loc="best")
        xs_all = [x for _, _, x, _ in points]
        if xs_all and max(xs_all) / min(xs_all) >= 10:
            axes.set_xscale("log")
            axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            label += ", log scale"
        axes.set_xlabel(label + ")")
        axes.set_ylabel("Test accuracy (%)")
        axes.set_title(f"Accuracy against {cost}")
        _save(figure, path)


def teacher_vs_student(items: list[Compared], path: Path, *, show_document: bool) -> bool:
    """The document's teacher-vs-student bar chart, with the scratch control beside it."""
    wanted = [("Teacher", "baseline"), ("Student from scratch", "student-scratch"),
              ("Distilled student", "distill")]
    bars = []
    for label, strategy in wanted:
        values = [i.row["accuracy"] for i in items if i.name == strategy]
        if values:
            bars.append((label, *mean_std(values)))
    if len(bars) < 3:
        return False
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(6, 4))
        labels, means, stds = zip(*bars, strict=True)
        axes.bar(labels, means, yerr=stds, capsize=4,
                 color=["#333333", "#7f7f7f", "#2ca02c"])
        if show_document:
            axes.axhline(DOCUMENT_STUDENT_ACCURACY, color="#d62728", linestyle=":",
                         label="document's student (0.78, one unseeded run)")
            axes.legend(loc="lower right")
        axes.set_ylim(max(0.0, min(means) - 0.15), 1.0)
        axes.set_ylabel("Test accuracy (mean ± std over seeds)")
        axes.set_title("Teacher and student accuracy")
        _save(figure, path)
    return True


def size_and_latency_bars(items: list[Compared], path: Path) -> None:
    sizes = _averaged(items, lambda i: i.row["size_bytes"] / 1024)
    gzips = dict((n, x) for n, _, x, _ in _averaged(items, lambda i: i.row["size_gzip_bytes"] / 1024))
    latency = _averaged([i for i in items if i.row.get("latency_us_p50")],
                        lambda i: i.row["latency_us_p50"])
    with plt.rc_context(STYLE):
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(sizes) + 1.5))
        names = [n for n, *_ in sizes]
        left.barh(names, [x for _, _, x, _ in sizes], color="#1f77b4", label="raw")
        left.barh(names, [gzips[n] for n in names], color="#aec7e8", label="gzip", height=0.4)
        left.set_xlabel("Size (KB)")
        left.legend()
        left.invert_yaxis()
        right.barh([n for n, *_ in latency], [x for _, _, x, _ in latency], color="#ff7f0e")
        right.set_xlabel("Latency p50 (µs)")
        right.invert_yaxis()
        figure.suptitle("Size and latency per strategy")
        _save(figure, path)
