"""Report figures: what they claim (legend, title, error bars) is what they draw; labels stay legible."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from compress.report import plots
from compress.report.plots import FAMILY_COLORS, Point

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = [
    ("baseline", "baseline", "baseline"), ("quantize-dynamic", "quantization", "technique"),
    ("quantize-float16", "quantization", "technique"), ("quantize-int8", "quantization", "technique"),
    ("quantize-int8-io", "quantization", "technique"), ("quantize-qat", "quantization", "technique"),
    ("prune-50", "pruning", "technique"), ("prune-80", "pruning", "technique"),
    ("cluster-16", "clustering", "technique"), ("distill (T=2)", "distillation", "technique"),
    ("student-scratch", "distillation", "control"), ("finetune-head", "my-plugin", "technique"),
]


def point(label: str, family: str = "quantization", role: str = "technique", *, seeds: int = 3,
          accuracy: float = 0.9, size: float = 20.0, latency: float | None = 100.0) -> Point:
    return Point(label=label, family=family, role=role, seeds=seeds, accuracy=accuracy,
                 accuracy_low=accuracy - 0.02, accuracy_high=min(1.0, accuracy + 0.01), size_kib=size,
                 gzip_kib=size / 2, latency_us=latency,
                 latency_low=None if latency is None else latency * 0.95,
                 latency_high=None if latency is None else latency * 1.1)


def crowded(seeds: int = 3) -> list[Point]:
    """Eleven configurations a thousandth of a KiB and 0.01 points apart, and a distant baseline."""
    far = point("baseline", "baseline", "baseline", seeds=seeds, accuracy=0.97, size=80.0, latency=300.0)
    return [far] + [point(label, family, role, seeds=seeds, accuracy=0.95 + 1e-4 * i, size=20.0 + 0.001 * i,
                          latency=100.0 + 0.01 * i)
                    for i, (label, family, role) in enumerate(NAMES) if role != "baseline"]


def spread(seeds: int = 1) -> list[Point]:
    return [point(label, family, role, seeds=seeds, accuracy=0.80 + 0.012 * i, size=500 / (i + 1),
                  latency=None if i % 4 == 3 else 50.0 + 30 * i)
            for i, (label, family, role) in enumerate(NAMES)]


def legend_texts(figure: Figure) -> list[str]:
    legend = figure.axes[0].get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    height, width, _ = matplotlib.image.imread(path).shape
    assert height > 100 and width > 100


@pytest.fixture(scope="module")
def crowded_figure() -> Figure:
    figure = plots._tradeoff_figure(crowded(), cost="size", front=["quantize-int8", "baseline"])
    figure.canvas.draw()
    return figure


def test_tradeoff_writes_identical_png_bytes_for_the_same_input(tmp_path):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    plots.accuracy_tradeoff(crowded(), first, cost="size", front=["baseline", "quantize-int8"])
    plots.accuracy_tradeoff(crowded(), second, cost="size", front=["baseline", "quantize-int8"])
    assert_png(first)
    assert first.read_bytes() == second.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_crowded_labels_do_not_overlap_and_stay_inside_the_axes(crowded_figure):
    axes = crowded_figure.axes[0]
    renderer = crowded_figure.canvas.get_renderer()
    texts = axes.texts
    assert sorted(t.get_text() for t in texts) == sorted(label for label, _, _ in NAMES)
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in texts}
    overlapping = [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2)
                   if box_a.overlaps(box_b)]
    assert overlapping == []
    inside = axes.get_window_extent(renderer).expanded(1.01, 1.01)
    assert all(inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1) for box in boxes.values())
    assert axes.patches, "moved labels are connected to their points by arrows"


def test_crowded_figure_has_error_bars_for_every_point(crowded_figure):
    bars = [c for c in crowded_figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(NAMES)
    assert all(c.has_yerr and not c.has_xerr for c in bars)


def test_legend_lists_families_controls_and_the_drawn_frontier(crowded_figure):
    assert legend_texts(crowded_figure) == ["baseline", "quantization", "pruning", "clustering",
                                            "distillation", "my-plugin", "control (hollow)",
                                            "Pareto frontier"]
    (line,) = [line for line in crowded_figure.axes[0].lines if line.get_label() == "Pareto frontier"]
    assert line.get_linestyle() == "--"
    assert list(line.get_xdata()) == [20.003, 80.0]  # quantize-int8 then the baseline, in cost order


@pytest.mark.parametrize("front", [(), ("quantize-int8",)])
def test_no_frontier_line_or_legend_entry_below_two_points(front):
    figure = plots._tradeoff_figure(spread(), cost="size", front=front)
    assert "Pareto frontier" not in legend_texts(figure)
    assert not [line for line in figure.axes[0].lines if line.get_linestyle() == "--"]


def test_controls_are_hollow_and_techniques_filled(crowded_figure):
    markers = {c.get_gid(): c for c in crowded_figure.axes[0].collections if c.get_gid()}
    control, technique = markers["student-scratch"], markers["quantize-int8"]
    assert len(control.get_facecolor()) == 0 or control.get_facecolor()[0][3] == 0
    assert control.get_edgecolor()[0][3] > 0
    assert technique.get_facecolor()[0][3] > 0
    assert markers["baseline"].get_facecolor()[0][:3].tolist() == [0, 0, 0]


def test_front_may_not_name_a_control():
    with pytest.raises(ValueError, match="student-scratch"):
        plots._tradeoff_figure(crowded(), cost="size", front=["baseline", "student-scratch"])


def test_latency_plot_leaves_out_points_without_latency_and_has_x_error_bars(tmp_path):
    points = spread()
    figure = plots._tradeoff_figure(points, cost="latency", front=["baseline", "quantize-dynamic"])
    axes = figure.axes[0]
    assert sorted(t.get_text() for t in axes.texts) == sorted(p.label for p in points if p.latency_us)
    assert len(axes.texts) < len(points)
    bars = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(axes.texts) and all(c.has_xerr and c.has_yerr for c in bars)
    assert "latency" in axes.get_xlabel()
    plots.accuracy_tradeoff(points, tmp_path / "latency.png", cost="latency")
    assert_png(tmp_path / "latency.png")


def test_title_says_what_the_error_bars_are(crowded_figure):
    assert "95% interval over 3 seeds" in crowded_figure.axes[0].get_title()
    one_seed = plots._tradeoff_figure(spread(seeds=1), cost="size").axes[0].get_title()
    assert "95% test-split interval (one seed)" in one_seed and "seeds" not in one_seed
    mixed = crowded(seeds=3)[:5] + spread(seeds=1)[5:]
    assert "(one seed)" in plots._tradeoff_figure(mixed, cost="size").axes[0].get_title()


def test_log_scale_only_for_a_tenfold_range(crowded_figure):
    assert crowded_figure.axes[0].get_xscale() == "linear"
    wide = plots._tradeoff_figure(spread(), cost="size").axes[0]  # 500 KiB down to 41.7 KiB
    assert wide.get_xscale() == "log" and "log scale" in wide.get_xlabel() and "KiB" in wide.get_xlabel()


def test_plugin_families_get_a_stable_colour_of_their_own():
    assert plots._family_color("my-plugin") == plots._family_color("my-plugin")
    assert plots._family_color("my-plugin") not in FAMILY_COLORS.values()
    assert plots._family_color("pruning") == FAMILY_COLORS["pruning"]


def test_size_and_latency_bars_keep_order_hatch_controls_and_skip_missing_latency(tmp_path):
    points = spread()
    points[0] = dataclasses.replace(points[0], arena_kib=10.0, rss_kib=3300.0)
    figure = plots._bars_figure(points)
    left, arena, rss, right = figure.axes
    for panel in (arena, rss):  # memory: a bar where measured, "not measured" where not
        assert len(panel.patches) == 1
        assert sum(t.get_text().strip() == "not measured" for t in panel.texts) == len(points) - 1
    assert [t.get_text() for t in left.get_yticklabels()] == [p.label for p in points]
    assert left.yaxis_inverted()  # first point at the top
    hatched = {round(bar.get_y() + bar.get_height() / 2) for bar in left.patches if bar.get_hatch()}
    assert hatched == {i for i, p in enumerate(points) if p.role == "control"}
    measured = [p for p in points if p.latency_us is not None]
    assert len(right.patches) == len(measured)
    assert len([c for c in right.containers if isinstance(c, ErrorbarContainer)]) == len(measured)
    assert sum(t.get_text().strip() == "not measured" for t in right.texts) == len(points) - len(measured)
    path = tmp_path / "bars.png"
    plots.size_and_latency_bars(points, path)
    assert_png(path)
    first = path.read_bytes()
    plots.size_and_latency_bars(points, path)
    assert path.read_bytes() == first


BARS = [("Teacher", 0.95, 0.93, 0.97), ("Student from scratch", 0.80, 0.77, 0.83),
        ("Distilled student", 0.85, 0.83, 0.88)]


@pytest.mark.parametrize(("seeds", "expected"), [(1, "(one seed, 95% test-split interval)"),
                                                 (5, "(mean, 95% interval over 5 seeds)")])
def test_teacher_vs_student_axis_says_what_the_bars_are(seeds, expected):
    axes = plots._students_figure(BARS, seeds=seeds).axes[0]
    assert axes.get_ylabel().startswith("Test accuracy") and expected in axes.get_ylabel()
    assert axes.get_legend() is None
    (errors,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    segments = errors.lines[2][0].get_segments()
    drawn = [(round(s[0][1], 6), round(s[1][1], 6)) for s in segments]
    assert drawn == [(low, high) for _, _, low, high in BARS]


def test_teacher_vs_student_reference_line_is_in_the_legend(tmp_path):
    reference = ("document's student (0.78, one unseeded run)", 0.78)
    figure = plots._students_figure(BARS, reference=reference, seeds=3)
    assert legend_texts(figure) == [reference[0]]
    assert any(list(line.get_ydata()) == [0.78, 0.78] for line in figure.axes[0].lines)
    path = tmp_path / "students.png"
    plots.teacher_vs_student(BARS, path, reference=reference, seeds=3)
    assert_png(path)


def test_pareto_front_is_unchanged():
    assert plots.pareto_front([(3, 0.9), (1, 0.8), (2, 0.7), (4, 0.95), (1, 0.6)]) == [
        (1, 0.8), (3, 0.9), (4, 0.95)]


def test_latency_plot_without_any_latency_says_so_instead_of_failing(tmp_path):
    points = [point("baseline", "baseline", "baseline", latency=None), point("quantize-int8", latency=None)]
    axes = plots._tradeoff_figure(points, cost="latency").axes[0]
    assert [t.get_text() for t in axes.texts] == ["No configuration has a latency measurement."]
    plots.accuracy_tradeoff(points, tmp_path / "latency.png", cost="latency")
    assert_png(tmp_path / "latency.png")




def _four_figures(folder) -> list:
    points = crowded(seeds=1)
    return [functools.partial(plots.accuracy_tradeoff, points, folder / "size.png", cost="size"),
            functools.partial(plots.accuracy_tradeoff, points, folder / "latency.png", cost="latency"),
            functools.partial(plots.size_and_latency_bars, points, folder / "bars.png"),
            functools.partial(plots.teacher_vs_student, [("Teacher", 0.9, 0.88, 0.92)],
                              folder / "students.png")]


@pytest.fixture
def start_methods(monkeypatch) -> list[str]:
    """The start methods ``draw_all`` asks multiprocessing for: ["fork"] when it drew side by side."""
    import multiprocessing

    asked: list[str] = []
    real = multiprocessing.get_context

    def recorded(method=None):
        asked.append(method)
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", recorded)
    return asked


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="figures are drawn side by side only on Linux with several cores")
def test_figures_drawn_side_by_side_are_the_bytes_drawn_one_after_another(tmp_path):
    """In a fresh process (this one may have TensorFlow loaded by another test): side by side where
    forking is safe, the same bytes as one after another, and a helper's error raised in the caller."""
    script = f"""
import functools, multiprocessing, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from tests.test_plots import _four_figures, point
from compress.report import plots
asked = []
real = multiprocessing.get_context
multiprocessing.get_context = lambda method=None: asked.append(method) or real(method)
folder = Path({str(tmp_path)!r})
(folder / "together").mkdir(); (folder / "apart").mkdir()
plots.draw_all(_four_figures(folder / "together"))
assert asked == ["fork"], asked
plots.fork_is_safe = lambda: False
plots.draw_all(_four_figures(folder / "apart"))
assert asked == ["fork"], asked
plots.fork_is_safe = lambda: True
try:
    plots.draw_all([functools.partial(plots.accuracy_tradeoff, [point("a"), point("a")], folder / "a.png",
                                      cost="size"), functools.partial(int)])
except ValueError as error:
    print("raised:", error)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "raised: point labels must be unique" in done.stdout
    for name in ("size.png", "latency.png", "bars.png", "students.png"):
        assert_png(tmp_path / "together" / name)
        assert (tmp_path / "together" / name).read_bytes() == (tmp_path / "apart" / name).read_bytes()


def test_figures_are_not_drawn_side_by_side_after_tensorflow_loaded(tmp_path, monkeypatch, start_methods):
    monkeypatch.setitem(sys.modules, "tensorflow", object())  # its thread pools do not survive a fork
    plots.draw_all(_four_figures(tmp_path)[:2])
    assert start_methods == []
    assert_png(tmp_path / "size.png")
    assert_png(tmp_path / "latency.png")
