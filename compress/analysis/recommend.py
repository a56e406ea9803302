"""Pick a compression method for a deployment's constraints, from saved results.

Each configuration (over its seeds) is one candidate; control rows never are.
Every constraint is a hard limit on the mean over seeds.  The objective orders
what is left, but differences within measurement noise are ties (sizes within
1%, latencies within 3% or with overlapping intervals, accuracies no pooled
McNemar test can tell apart), broken toward the smaller model, then the one
cheaper to train.  The report's recommendation section uses this same code.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compress.analysis.configurations import (
    SAME_SIZE_MARGIN,
    SAME_SPEED_MARGIN,
    SIGNIFICANCE,
    Config,
    Row,
    between,
    configurations,
)
from compress.analysis.devices import Device, fits, parse_device
from compress.common.errors import UserError, option
from compress.results.rows import require_one_group

if TYPE_CHECKING:
    import pandas as pd

OBJECTIVES = ("size", "latency", "accuracy")
KIB = 1024
#: The default accuracy budget, the report's too: at most this many points below the teacher.
DEFAULT_MAX_DROP_PP = 1.0


class NothingQualifies(Exception):
    """No configuration meets every constraint; the message names the closest one."""


@dataclass(frozen=True)
class Constraints:
    max_size_kib: float | None = None
    max_latency_us: float | None = None
    max_accuracy_drop: float | None = None  # percentage points below the teacher

    def __post_init__(self) -> None:
        for name, value in ((option("max_size_kib"), self.max_size_kib),
                            (option("max_latency_us"), self.max_latency_us)):
            if value is not None and not (_real(value) and math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a number above 0, got {value!r}")
        drop = self.max_accuracy_drop
        if drop is not None and not (_real(drop) and math.isfinite(drop) and drop >= 0):
            raise UserError(f"{option('max_accuracy_drop')} must be 0 or more percentage points, got {drop}")

    def misses(self, config: Config) -> list[tuple[str, float]]:
        """(constraint, relative excess) for every limit the configuration breaks."""
        out = []
        size = config.size_bytes / KIB
        if self.max_size_kib is not None and size > self.max_size_kib:
            out.append((f"{option('max_size_kib', self.max_size_kib)} (it is {size:.1f} KiB)",
                         size / self.max_size_kib - 1))
        if self.max_latency_us is not None:
            latency = config.latency[0] if config.latency else None
            if latency is None or latency > self.max_latency_us:
                shown = "not timed" if latency is None else f"{latency:.2f} µs"
                excess = math.inf if latency is None else latency / self.max_latency_us - 1
                out.append((f"{option('max_latency_us', self.max_latency_us)} (it is {shown})", excess))
        drop = round(-config.delta_pp, 9)  # 0.903 - 0.913 is not "more than 1 pp"
        if self.max_accuracy_drop is not None and drop > self.max_accuracy_drop:
            out.append((f"{option('max_accuracy_drop', self.max_accuracy_drop)} (it drops {drop:.1f} pp)",
                        (drop - self.max_accuracy_drop) / 100))
        return out


def objective_value(config: Config, objective: str) -> str:
    """The objective's value for display, with its interval where there is one."""
    if objective == "size":
        return f"{config.size_bytes / KIB:.1f} KiB ({config.size_factor:.2f}× smaller)"
    if objective == "latency":
        if not config.latency:
            return "not timed"
        mean, low, high = config.latency
        return f"{mean:.2f} µs [{low:.2f}, {high:.2f}]"
    mean, low, high = config.accuracy
    return f"accuracy {mean:.3f} [{low:.3f}, {high:.3f}]"


def _key(config: Config, objective: str) -> float:
    if objective == "size":
        return config.size_bytes
    if objective == "latency":
        return config.latency[0] if config.latency else math.inf
    return -config.accuracy[0]


def tied(a: Config, b: Config, objective: str) -> bool:
    """Whether two configurations are equal on the objective within measurement noise."""
    if objective == "size":
        return abs(a.size_bytes - b.size_bytes) <= SAME_SIZE_MARGIN * max(a.size_bytes, b.size_bytes)
    if objective == "latency":
        if not a.latency or not b.latency:
            return False
        (mean_a, low_a, high_a), (mean_b, low_b, high_b) = a.latency, b.latency
        overlap = low_a <= high_b and low_b <= high_a
        return overlap or abs(mean_a / mean_b - 1) < SAME_SPEED_MARGIN
    test = between(a, b)
    return test is None or test.p() > SIGNIFICANCE


def rank(configs: list[Config], objective: str) -> list[Config]:
    """Best first; among configurations tied with the best, the smaller, then cheaper to train."""
    remaining = sorted(configs, key=lambda c: (_key(c, objective), c.spec))
    ordered = []
    while remaining:
        ties = [remaining[0], *(c for c in remaining[1:] if tied(remaining[0], c, objective))]
        choice = min(ties, key=lambda c: (c.size_bytes, c.train_seconds, _key(c, objective), c.spec))
        ordered.append(choice)
        remaining.remove(choice)
    return ordered


@dataclass(frozen=True)
class Recommendation:
    best: Config
    runner_up: Config | None
    binding: str | None
    objective: str
    ties: tuple[Config, ...]  # within noise of the best on the objective, decided by size and cost

    def reasons(self) -> list[str]:
        """Why, in sentences: the objective's value for every configuration named."""
        b = self.best
        lines = [f"{b.label}: {self._value(b)} ({b.delta_pp:+.1f} pp vs teacher) over {b.seeds} seed(s)."]
        if self.ties:
            names = ", ".join(f"{t.label} ({objective_value(t, self.objective)})" for t in self.ties)
            lines.append(f"Tied within measurement noise on {self.objective} with {names}; "
                         "chosen as the smaller, then cheaper to train.")
        if self.binding:
            lines.append(f"Binding constraint: {self.binding}.")
        else:  # with ties, a tied configuration may be ahead on the objective's point value
            lines.append("No constraint binds." if self.ties else
                         f"No constraint binds: it is the best on {self.objective} overall.")
        if self.runner_up:
            r = self.runner_up
            lines.append(f"Runner-up: {r.label}: {self._value(r)} ({r.delta_pp:+.1f} pp).")
        if self.objective == "latency" and (b.unstable or (self.runner_up and self.runner_up.unstable)):
            lines.append("Latency was flagged unstable for these rows: re-run on a quiet machine "
                         "before relying on the order.")
        return lines

    def _value(self, config: Config) -> str:
        """The objective's value, and the accuracy unless that is the objective."""
        value = objective_value(config, self.objective)
        return value if self.objective == "accuracy" else f"{value}, accuracy {config.accuracy[0]:.3f}"

    def explain(self) -> str:
        head, *rest = self.reasons()
        return "\n".join([f"Recommended ({self.objective}): {head}", *(f"  {line}" for line in rest),
                          f"  spec: {self.best.spec}"])


def recommend(
    rows: Iterable[Row] | pd.DataFrame | str | Path,
    *,
    max_size_kib: float | None = None,
    max_latency_us: float | None = None,
    max_accuracy_drop: float | None = DEFAULT_MAX_DROP_PP,
    objective: str = "size",
    device: str | Device | None = None,
) -> Recommendation:
    """The best configuration meeting every constraint; raises NothingQualifies otherwise, and
    UserError for rows of several datasets or teachers (their models are no alternatives).

    ``rows`` are result rows (``read_results``), the frame ``compare`` returns, or a run
    folder.  The accuracy budget is the report's unless given: a model that lost 30 points is
    no answer, however small; None drops it.  ``device`` (a profile of ``analysis.devices``):
    only configurations that fit it on every seed qualify."""
    if objective not in OBJECTIVES:
        raise UserError(f"{option('objective')} must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    target = parse_device(device)
    rows = _as_rows(rows)
    if target is not None:
        _require_measured(rows, target)
    require_one_group(rows, "a recommendation compares models of one: give the runs of one dataset "
                      "and teacher")
    limits = Constraints(max_size_kib, max_latency_us, max_accuracy_drop)
    found = [c for c in configurations(rows) if c.role != "control"]
    candidates = [c for c in found if c.whole]  # one answered on 1 of 3 seeds answers for 1
    if not candidates:
        partial = ", ".join(f"{c.label} ({c.seeds_text})" for c in found)
        raise NothingQualifies(f"no configuration finished on every seed asked of it: {partial}" if partial
                               else "no finished rows with a baseline to compare against")
    if target is not None:
        candidates = _fit(candidates, target)
    if objective == "latency":  # an untimed row (a run stopped before its timing) has no latency to rank
        candidates = [c for c in candidates if c.latency]
        if not candidates:
            raise NothingQualifies("no row was timed (the run stopped before timing every model); "
                                   f"re-run it, or choose {option('objective', 'size')} or "
                                   f"{option('objective', 'accuracy')}")
    pool = rank(candidates, objective)
    feasible = [c for c in pool if not limits.misses(c)]
    if not feasible:
        closest = min(pool, key=lambda c: (sum(excess for _, excess in limits.misses(c)), c.spec))
        missed = "; ".join(text for text, _ in limits.misses(closest))
        raise NothingQualifies(f"nothing meets every constraint; closest is {closest.label} "
                               f"({objective_value(closest, objective)}), which misses {missed}")
    best = feasible[0]
    better = pool[: pool.index(best)]  # preferred on the objective but excluded
    binding = None
    if better:  # the next-better option: what would have to give to get it
        nearest = better[-1]
        binding = "; ".join(text for text, _ in limits.misses(nearest)) + \
            f", which rules out {nearest.label} ({objective_value(nearest, objective)})"
    ties = tuple(c for c in feasible[1:] if tied(best, c, objective))
    runner_up = feasible[1] if len(feasible) > 1 else None
    return Recommendation(best, runner_up, binding, objective, ties)


def _fit(candidates: list[Config], device: Device) -> list[Config]:
    """The configurations that fit ``device`` on every seed; NothingQualifies naming the closest
    (the least arena over) and why when none does."""
    fitting = [c for c in candidates if all(fits(i.row, device)[0] for i in c.items)]
    if fitting:
        return fitting
    measured = [c for c in candidates if all(i.row.get("micro_arena_bytes") for i in c.items)] or candidates
    closest = min(measured, key=lambda c: (max(i.row.get("micro_arena_bytes") or 0 for i in c.items), c.spec))
    why = next(text for ok, text in (fits(i.row, device) for i in closest.items) if not ok)
    raise NothingQualifies(f"no configuration fits {device.describe()}; closest is {closest.label}: {why}")


def _require_measured(rows: list[Row], device: Device) -> None:
    """One line when no row was measured for a microcontroller ``device``."""
    finished = [row for row in rows if row.get("status") == "ok"]
    if device.micro and finished and all(row.get("micro_runs") is None for row in finished):
        why = finished[0].get("micro_reason") or \
            "they were measured before compress measured TFLite Micro, or with --no-micro"
        raise UserError(f"these rows were not measured in TFLite Micro ({why}); run the same command "
                        f"again with {option('device', device.name)} to measure what the device needs")


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_rows(rows: Iterable[Row] | pd.DataFrame | str | Path) -> list[Row]:
    """Rows from whatever a Python caller has at hand: rows, ``compare``'s frame or a run folder."""
    from compress.results.manifest import unfinished_runs
    from compress.results.rows import read_runs

    if isinstance(rows, (str, Path)):
        for folder in unfinished_runs([rows]):
            warnings.warn(f"{folder} stopped early: the strategies it did not finish are not among "
                          "the candidates", RuntimeWarning, stacklevel=3)
        return read_runs([rows])
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame, without importing pandas
        return rows.astype(object).where(rows.notna(), None).to_dict("records")
    rows = list(rows)
    if not all(isinstance(row, dict) for row in rows):
        raise UserError("recommend takes result rows (compress.read_results), the frame compress.compare "
                        "returns, or a run folder")
    return rows


def default_choices(rows: list[Row],
                    device: Device | None = None) -> dict[str, Recommendation | NothingQualifies]:
    """The smallest and the fastest configuration within the default accuracy budget (and that
    fit ``device``)."""
    out: dict[str, Recommendation | NothingQualifies] = {}
    for objective in ("size", "latency"):
        try:
            out[objective] = recommend(rows, max_accuracy_drop=DEFAULT_MAX_DROP_PP, objective=objective,
                                       device=device)
        except NothingQualifies as answer:
            out[objective] = answer
    return out
