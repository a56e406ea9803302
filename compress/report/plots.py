"""Report figures in one consistent style; PNG bytes are reproducible for the same input.

The report module aggregates rows over seeds into ``Point`` values and chooses the Pareto
front itself (it knows which differences are significant); this module only draws.
"""

from __future__ import annotations

import functools
import io
import os
import sys
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker
from adjustText import adjust_text
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox

from compress.common.fileio import write_atomic

STYLE = {
    "figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "compress",
}
FAMILY_COLORS = {
    "baseline": "#333333", "quantization": "#1f77b4", "pruning": "#d62728",
    "distillation": "#2ca02c", "fine-tuning": "#9467bd", "clustering": "#ff7f0e",
    "factorization": "#e7ba52",
}
# Plugin families: picked by a stable hash so a family keeps its colour across figures and runs.
_EXTRA_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#393b79", "#8c6d31")
_STUDENT_COLORS = ("#333333", "#7f7f7f", "#2ca02c", "#1f77b4", "#9467bd")
_DOT_AREA, _STAR_AREA = 40, 140  # marker areas, points squared
# Fixed iteration count (no time limit) so label placement, and so the PNG, never depends on speed.
# The crowded test layout is separated within 100; 200 leaves a margin at a quarter of 800's cost.
_LABEL_ITERATIONS = 200


@dataclass(frozen=True)
class Point:
    """One configuration aggregated over seeds."""

    label: str
    family: str
    role: str  # "baseline" | "technique" | "control"
    seeds: int
    accuracy: float  # fraction 0..1, mean over seeds
    accuracy_low: float  # interval over seeds if seeds > 1, else the test-split interval
    accuracy_high: float
    size_kib: float
    gzip_kib: float
    latency_us: float | None = None
    latency_low: float | None = None
    latency_high: float | None = None
    arena_kib: float | None = None  # run-time memory: the tensor arena
    rss_kib: float | None = None  # and what the model adds to a process's peak resident memory


def fork_is_safe() -> bool:
    """Whether this process may fork helpers: Linux (fork is unsafe with macOS's system
    libraries), no TensorFlow (its thread pools do not survive a fork), no other Python thread."""
    return (sys.platform.startswith("linux") and "tensorflow" not in sys.modules
            and threading.active_count() == 1)


def draw_all(figures: Sequence[functools.partial[None]]) -> None:
    """Draw each figure (a call that writes one file), side by side on the free cores when
    this process can fork: the report's figures are its slowest part (measured:
    docs/benchmarks.md, "Default run wall time"), and after a run with workers the parent has
    no TensorFlow.  Otherwise one after another;
    the files are the same bytes either way.  A figure's error is raised here."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(figures) < 2 or cores < 2 or not fork_is_safe():
        for figure in figures:
            figure()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    forked = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(cores, len(figures)), mp_context=forked) as pool:
        for done in [pool.submit(figure) for figure in figures]:
            done.result()


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    front: list[tuple[float, float]] = []
    for cost, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((cost, accuracy))
    return front


def _family_color(family: str) -> str:
    """Known families have fixed colours; any other family gets a deterministic palette colour."""
    if family in FAMILY_COLORS:
        return FAMILY_COLORS[family]
    return _EXTRA_COLORS[zlib.crc32(family.encode()) % len(_EXTRA_COLORS)]


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure outside pyplot's global state, so concurrent reports never share one."""
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    """PNG without a version stamp, so equal figures give equal bytes; the layout is already final."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="png", metadata={"Software": None})
    write_atomic(path, buffer.getvalue())


def _errors(
    value: float, low: float | None, high: float | None, scale: float = 1.0
) -> list[list[float]] | None:
    """Asymmetric error-bar lengths, None when unknown; a bound past the mean (rounding) is clipped,
    since matplotlib rejects negative lengths."""
    if low is None or high is None:
        return None
    return [[max(0.0, (value - low) * scale)], [max(0.0, (high - value) * scale)]]


def _interval_note(points: Sequence[Point]) -> str:
    """Say what the error bars are: a seed interval only when every point has several seeds."""
    seeds = sorted({p.seeds for p in points})
    if seeds[0] > 1:
        count = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
        return f"error bars: 95% interval over {count} seeds"
    return "error bars: 95% test-split interval (one seed)"


def _tradeoff_figure(points: Sequence[Point], *, cost: str, front: Sequence[str] = ()) -> Figure:
    """Build the accuracy/cost scatter with its final layout (see ``accuracy_tradeoff``)."""
    if cost == "size":
        drawn = [(p, p.size_kib) for p in points]
        axis_label = "TFLite size (KiB = 1024 bytes"
    elif cost == "latency":
        drawn = [(p, p.latency_us) for p in points if p.latency_us is not None]
        axis_label = "Batch-1 latency p50 (µs"
    else:
        raise ValueError(f"cost must be 'size' or 'latency', not {cost!r}")
    by_label = {p.label: (p, x) for p, x in drawn}
    if len(by_label) != len(drawn):
        raise ValueError("point labels must be unique")
    unknown = [name for name in front if name not in by_label or by_label[name][0].role == "control"]
    if unknown:
        raise ValueError(f"front names points that are not drawn or are controls: {unknown}")

    with matplotlib.rc_context(STYLE):
        figure = _new_figure((8, 5))
        axes = figure.subplots()
        if not drawn:  # e.g. a run stopped before timing: say so in the figure rather than fail the report
            axes.set_title(f"Accuracy against {cost}")
            axes.set_axis_off()
            axes.text(0.5, 0.5, f"No configuration has a {cost} measurement.", ha="center", va="center",
                      transform=axes.transAxes)
            return figure
        for p, x in drawn:
            color = _family_color(p.family)
            y = p.accuracy * 100
            xerr = None if cost == "size" else _errors(x, p.latency_low, p.latency_high)
            axes.errorbar(x, y, yerr=_errors(p.accuracy, p.accuracy_low, p.accuracy_high, 100), xerr=xerr,
                          fmt="none", ecolor=color, elinewidth=0.8, capsize=2, alpha=0.7, zorder=2)
            if p.role == "baseline":
                axes.scatter(x, y, s=_STAR_AREA, marker="*", color="black", zorder=4, gid=p.label)
            elif p.role == "control":
                axes.scatter(x, y, s=_DOT_AREA, facecolors="none", edgecolors=color, linewidths=1.3, zorder=3,
                             gid=p.label)
            else:
                axes.scatter(x, y, s=_DOT_AREA, color=color, zorder=3, gid=p.label)

        handles: list[Line2D] = []
        for is_baseline, family in dict.fromkeys((p.role == "baseline", p.family) for p, _ in drawn):
            if is_baseline:
                handles.append(Line2D([], [], marker="*", markersize=11, color="black", linestyle="",
                                      label="baseline"))
            else:
                handles.append(Line2D([], [], marker="o", color=_family_color(family), linestyle="",
                                      label=family))
        if any(p.role == "control" for p, _ in drawn):
            handles.append(Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="#555555",
                                  linestyle="", label="control (hollow)"))
        if len(front) >= 2:
            line = sorted((by_label[name][1], by_label[name][0].accuracy * 100) for name in front)
            xs, ys = zip(*line, strict=True)
            (step,) = axes.step(xs, ys, where="post", color="#555555", linestyle="--", linewidth=1,
                                label="Pareto frontier", zorder=1)
            handles.append(step)
        # Outside the axes, so it can never sit on a point or a label.
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

        xs_all = [x for _, x in drawn]
        if max(xs_all) / min(xs_all) >= 10:
            axes.set_xscale("log")
            plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
            axes.xaxis.set_major_formatter(plain)
            axes.xaxis.set_minor_formatter(plain)  # not "4×10⁰"
            axis_label += ", log scale"
        axes.margins(0.12)
        axes.set_xlabel(axis_label + ")")
        axes.set_ylabel("Test accuracy (%)")
        axes.set_title(f"Accuracy against {cost}\n{_interval_note([p for p, _ in drawn])}")
        _place_labels(figure, axes, [(p.label, x, p.accuracy * 100,
                                      _STAR_AREA if p.role == "baseline" else _DOT_AREA) for p, x in drawn])
    return figure


def _place_labels(figure: Figure, axes: Axes, labels: list[tuple[str, float, float, float]]) -> None:
    """Fix the layout, then move labels apart; any later layout change would undo the separation."""
    figure.tight_layout()
    axes.set_xlim(axes.get_xlim())  # arrows must not trigger a re-autoscale at save time
    axes.set_ylim(axes.get_ylim())
    # Markers are wider than the point itself (the baseline star especially): keep labels off them.
    avoid = []
    for _, x, y, area in labels:
        centre = axes.transData.transform((x, y))
        radius = area ** 0.5 / 2 * figure.dpi / 72  # marker area is in points squared
        corners = [centre - radius, centre + radius]
        avoid.append(Bbox(axes.transData.inverted().transform(corners)))
    backdrop = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}
    texts = [axes.text(x, y, name, fontsize=7, zorder=5, bbox=backdrop) for name, x, y, _ in labels]
    # prevent_crossings swaps the boxes of labels of different widths, which re-creates overlaps.
    # Stronger text repulsion than the default: it separated every crowded layout tried, in time.
    adjust_text(texts, x=[x for _, x, _, _ in labels], y=[y for _, _, y, _ in labels], objects=avoid, ax=axes,
                prevent_crossings=False, iter_lim=_LABEL_ITERATIONS, time_lim=None, force_text=(0.5, 1.0),
                expand=(1.1, 1.3), min_arrow_len=6,
                arrowprops={"arrowstyle": "-", "color": "#777777", "linewidth": 0.5})


def accuracy_tradeoff(points: Sequence[Point], path: Path, *, cost: str, front: Sequence[str] = ()) -> None:
    """Accuracy against size or latency, with error bars and the caller's Pareto front.

    ``cost`` is "size" or "latency" (points without a latency are left out). ``front`` names
    the points on the frontier; the caller decides it because only it knows which differences
    are significant. Fewer than two names draw no line. With no point to draw the figure says
    so. Raises ValueError when labels repeat or ``front`` names a control or a point not drawn.
    """
    _save(_tradeoff_figure(points, cost=cost, front=front), path)


def _bars_figure(points: Sequence[Point]) -> Figure:
    """Build the size, memory and latency bar panels (see ``size_and_latency_bars``)."""
    if not points:
        raise ValueError("no points to draw")
    rows = range(len(points))
    with matplotlib.rc_context(STYLE):
        figure = _new_figure((14, 0.45 * len(points) + 1.8))
        left, arena, rss, right = figure.subplots(1, 4, sharey=True, width_ratios=(3, 2, 2, 3))
        for row, p in zip(rows, points, strict=True):
            color = _family_color(p.family)
            control = p.role == "control"
            hatch = "////" if control else None
            style = {"color": color, "alpha": 0.55 if control else 1.0, "hatch": hatch, "edgecolor": color}
            left.barh(row, p.size_kib, color=color, alpha=0.3 if control else 0.45, hatch=hatch,
                      edgecolor=color)
            left.barh(row, p.gzip_kib, height=0.4, **style)
            for axes, value in ((arena, p.arena_kib), (rss, p.rss_kib)):
                if value is None:
                    axes.text(0, row, " not measured", va="center", fontsize=7, color="#777777")
                else:
                    axes.barh(row, value, **style)
            if p.latency_us is None:
                right.text(0, row, " not measured", va="center", fontsize=7, color="#777777")
                continue
            right.barh(row, p.latency_us, **style,
                       xerr=_errors(p.latency_us, p.latency_low, p.latency_high),
                       error_kw={"elinewidth": 0.8, "capsize": 2})
        arena.set_xlabel("Tensor arena (KiB)")
        rss.set_xlabel("Peak RSS added (KiB)")
        for axes in (arena, rss):
            axes.set_axisbelow(True)
            axes.set_xlim(left=0)
        left.set_yticks(list(rows), [p.label for p in points])
        left.set_axisbelow(True)
        right.set_axisbelow(True)
        left.invert_yaxis()  # first point on top, as given
        left.set_xlabel("Size (KiB = 1024 bytes)")
        handles = [Patch(facecolor="#1f77b4", alpha=0.45, label="raw .tflite"),
                   Patch(facecolor="#1f77b4", label="gzip (narrow bar)")]
        if any(p.role == "control" for p in points):
            handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="////", label="control"))
        # Above the panel: inside, it would cover the longest bars.
        left.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=len(handles),
                    frameon=False, borderaxespad=0.3)
        right.set_xlabel("Batch-1 latency p50 (µs)")
        right.set_xlim(left=0)
        figure.suptitle("Size, run-time memory and latency per configuration (colour = family; "
                        "error bars: 95% interval)")
        figure.tight_layout()
    return figure


def size_and_latency_bars(points: Sequence[Point], path: Path) -> None:
    """Size (raw and gzip overlaid), tensor arena, added peak RSS and latency side by side, in
    the order given; controls hatched."""
    _save(_bars_figure(points), path)


def _students_figure(bars: Sequence[tuple[str, float, float, float]], *,
                     reference: tuple[str, float] | None = None, seeds: int = 1) -> Figure:
    """Build the teacher/student bar chart (see ``teacher_vs_student``)."""
    if not bars:
        raise ValueError("no bars to draw")
    labels = [label for label, *_ in bars]
    means = [mean for _, mean, _, _ in bars]
    yerr = [[max(0.0, mean - low) for _, mean, low, _ in bars],
            [max(0.0, high - mean) for _, mean, _, high in bars]]
    with matplotlib.rc_context(STYLE):
        figure = _new_figure((6, 4))
        axes = figure.subplots()
        colors = [_STUDENT_COLORS[i % len(_STUDENT_COLORS)] for i in range(len(bars))]
        axes.bar(range(len(bars)), means, yerr=yerr, capsize=4, color=colors)
        axes.set_xticks(range(len(bars)), labels)
        axes.set_axisbelow(True)
        lowest = min([low for _, _, low, _ in bars] + ([reference[1]] if reference else []))
        if reference is not None:
            axes.axhline(reference[1], color="#d62728", linestyle=":", label=reference[0])
            # Below the axes: inside, it would cover a bar or an error bar whatever the numbers.
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
        axes.set_ylim(max(0.0, lowest - 0.1), 1.0)
        spread = (f"mean, 95% interval over {seeds} seeds" if seeds > 1
                  else "one seed, 95% test-split interval")
        axes.set_ylabel(f"Test accuracy\n({spread})")
        axes.set_title("Teacher and student accuracy")
        figure.tight_layout()
    return figure


def teacher_vs_student(bars: Sequence[tuple[str, float, float, float]], path: Path, *,
                       reference: tuple[str, float] | None = None, seeds: int = 1) -> None:
    """Bars of (label, mean accuracy, low, high) with their intervals, and an optional reference line.

    ``seeds`` is how many seeds the means are over; it decides what the axis says the bars are.
    """
    _save(_students_figure(bars, reference=reference, seeds=seeds), path)
