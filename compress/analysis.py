"""Comparisons derived from saved rows: each row against the baseline of its own run and seed.

Shared by the report, the claims check and ``recommend``; pure Python, no TensorFlow.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.stats import mcnemar_exact

Row = dict[str, Any]

SIGNIFICANCE = 0.05
#: Speed ratios within this margin of 1 are reported as the same speed: a 1% gap can be
#: real (memory layout) yet meaningless, and a tight interval would otherwise call it "faster".
SAME_SPEED_MARGIN = 0.03


#: The source document's distillation setting and its single, unseeded result.
DOCUMENT_DISTILL_PARAMS = {"temperature": 2.0, "alpha": 0.5, "epochs": 20, "batch_size": 32}
DOCUMENT_STUDENT_ACCURACY = 0.78


def group_key(row: Row) -> tuple[str, int]:
    return (str(row.get("run_id")), int(row.get("seed") or 0))


@dataclass(frozen=True)
class Compared:
    """A finished row and the baseline (teacher) row it is compared with."""

    row: Row
    base: Row

    @property
    def name(self) -> str:
        return str(self.row["strategy"])

    @property
    def size_factor(self) -> float:
        """How many times smaller than the teacher (raw TFLite bytes)."""
        return self.base["size_bytes"] / self.row["size_bytes"]

    @property
    def gzip_factor(self) -> float:
        return self.base["size_gzip_bytes"] / self.row["size_gzip_bytes"]

    @property
    def delta_pp(self) -> float:
        """Accuracy change against the teacher in percentage points."""
        return (self.row["accuracy"] - self.base["accuracy"]) * 100

    @property
    def speed(self) -> str:
        return speed_verdict(self.row)

    @property
    def accuracy_significant(self) -> bool:
        p = self.row.get("mcnemar_p")
        return p is not None and p < SIGNIFICANCE and self.row is not self.base


def compared(rows: Iterable[Row]) -> list[Compared]:
    """Every finished row paired with its run's and seed's baseline (rows without one are left out)."""
    rows = list(rows)
    bases = {group_key(r): r for r in rows if r["strategy"] == "baseline" and r["status"] == "ok"}
    return [Compared(r, bases[group_key(r)]) for r in rows
            if r["status"] == "ok" and group_key(r) in bases]


def speed_verdict(row: Row) -> str:
    """'faster' or 'slower' only when the paired 95% interval excludes 1 and the
    difference exceeds the same-speed margin."""
    ratio, low, high = row.get("speedup"), row.get("speedup_ci_low"), row.get("speedup_ci_high")
    if ratio is None or low is None or high is None:
        return ""
    if low <= 1 <= high:
        return "no significant difference"
    if abs(ratio - 1) < SAME_SPEED_MARGIN:
        return f"same speed (within {SAME_SPEED_MARGIN:.0%})"
    return "faster" if ratio > 1 else "slower"


def accuracy_verdict(item: Compared) -> str:
    p = item.row.get("mcnemar_p")
    if p is None or item.row is item.base:
        return ""
    if p >= SIGNIFICANCE:
        return f"not significant (p={p:.2f})"
    side = "better" if item.delta_pp > 0 else "worse"
    return f"significantly {side} (p={p:.3f})"


def label(row: Row, rows: list[Row]) -> str:
    """The strategy name, plus the parameters that tell it apart from same-named rows."""
    twins = [r for r in rows if r["strategy"] == row["strategy"] and r is not row
             and group_key(r) == group_key(row)]
    if not twins:
        return str(row["strategy"])
    params = row.get("params") or {}
    differing = [k for k in params if any((t.get("params") or {}).get(k) != params[k] for t in twins)]
    return f"{row['strategy']} ({', '.join(f'{k}={params[k]}' for k in differing) or row['spec']})"


def by_spec(items: Iterable[Compared]) -> dict[str, list[Compared]]:
    """Items grouped by their full spec, in first-seen order (one entry per seed)."""
    groups: dict[str, list[Compared]] = defaultdict(list)
    for item in items:
        groups[item.row["spec"]].append(item)
    return dict(groups)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def mcnemar_between(a: Row, b: Row) -> float | None:
    """Exact McNemar p-value of two rows scored on the same test split (None if unknown)."""
    if not a.get("test_correct") or len(a["test_correct"]) != len(b.get("test_correct") or ""):
        return None
    return mcnemar_exact(np.array([c == "1" for c in a["test_correct"]]),
                         np.array([c == "1" for c in b["test_correct"]]))


#: Below this teacher-minus-scratch gap (in points) gap closure is mostly test-set noise.
MIN_GAP_PP = 1.0


@dataclass(frozen=True)
class GapClosure:
    """One distilled row against one control row of the same run and seed."""

    distilled: Compared
    control: Row

    @property
    def gain_pp(self) -> float:
        return (self.distilled.row["accuracy"] - self.control["accuracy"]) * 100

    @property
    def gap_pp(self) -> float:
        return (self.distilled.base["accuracy"] - self.control["accuracy"]) * 100

    @property
    def closure(self) -> float | None:
        """(distilled - control) / (teacher - control); undefined without a gap."""
        return self.gain_pp / self.gap_pp if self.gap_pp > 0 else None

    @property
    def p_value(self) -> float | None:
        return mcnemar_between(self.distilled.row, self.control)


def gap_closures(items: list[Compared], control: str) -> dict[str, list[GapClosure]]:
    """Per distill spec, its seeds paired with the ``control`` row of the same run and seed."""
    controls = {group_key(i.row): i.row for i in items if i.name == control}
    out: dict[str, list[GapClosure]] = {}
    for spec, group in by_spec(i for i in items if i.name == "distill").items():
        pairs = [GapClosure(i, controls[group_key(i.row)]) for i in group
                 if group_key(i.row) in controls]
        if pairs:
            out[spec] = pairs
    return out
