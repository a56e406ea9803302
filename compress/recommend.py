"""Pick a compression method for a deployment's constraints, from saved results.

Each configuration (spec) is one candidate, its numbers averaged over seeds.
Every constraint is a hard limit; the objective orders what is left, and ties
break on the other objectives, then on the name, so the pick is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from compress.analysis import Row, by_spec, compared, mean_std

OBJECTIVES = ("size", "latency", "accuracy")


class NothingQualifies(Exception):
    """No configuration meets every constraint; the message names the closest one."""


@dataclass(frozen=True)
class Candidate:
    spec: str
    strategy: str
    family: str
    seeds: int
    size_kb: float
    latency_us: float | None
    accuracy: float
    accuracy_drop_pp: float  # positive when worse than the teacher

    def sort_key(self, objective: str) -> tuple[float | str, ...]:
        latency = self.latency_us if self.latency_us is not None else float("inf")
        keys = {"size": self.size_kb, "latency": latency, "accuracy": -self.accuracy}
        order = [objective, *(o for o in OBJECTIVES if o != objective)]
        return (*(keys[o] for o in order), self.spec)


@dataclass(frozen=True)
class Constraints:
    max_size_kb: float | None = None
    max_latency_us: float | None = None
    max_accuracy_drop: float | None = None  # percentage points below the teacher

    def misses(self, candidate: Candidate) -> list[tuple[str, float]]:
        """(constraint, relative excess) for every limit the candidate breaks."""
        out = []
        if self.max_size_kb is not None and candidate.size_kb > self.max_size_kb:
            out.append((f"--max-size-kb {self.max_size_kb:g} (it is {candidate.size_kb:.1f} KB)",
                        candidate.size_kb / self.max_size_kb - 1))
        if self.max_latency_us is not None:
            latency = candidate.latency_us
            if latency is None or latency > self.max_latency_us:
                shown = "not timed" if latency is None else f"{latency:.2f} µs"
                excess = float("inf") if latency is None else latency / self.max_latency_us - 1
                out.append((f"--max-latency-us {self.max_latency_us:g} (it is {shown})", excess))
        if self.max_accuracy_drop is not None and candidate.accuracy_drop_pp > self.max_accuracy_drop:
            out.append((f"--max-accuracy-drop {self.max_accuracy_drop:g} "
                        f"(it drops {candidate.accuracy_drop_pp:.1f} pp)",
                        (candidate.accuracy_drop_pp - self.max_accuracy_drop) / 100))
        return out


@dataclass(frozen=True)
class Recommendation:
    best: Candidate
    runner_up: Candidate | None
    binding: str | None
    objective: str

    def explain(self) -> str:
        b = self.best
        latency = "not timed" if b.latency_us is None else f"{b.latency_us:.2f} µs"
        lines = [
            f"Recommended: {b.strategy} (`{b.spec}`)",
            f"  {b.size_kb:.1f} KB, {latency} p50, accuracy {b.accuracy:.3f} "
            f"({-b.accuracy_drop_pp:+.1f} pp vs teacher) over {b.seeds} seed(s).",
            f"  It is the best on {self.objective} among the configurations that meet every "
            "constraint.",
        ]
        if self.binding:
            lines.append(f"  Binding constraint: {self.binding}.")
        else:
            lines.append(f"  No constraint binds: it is the best on {self.objective} overall.")
        if self.runner_up:
            r = self.runner_up
            lines.append(f"  Runner-up: {r.strategy} (`{r.spec}`), {r.size_kb:.1f} KB, "
                         f"accuracy {r.accuracy:.3f}.")
        return "\n".join(lines)


def candidates(rows: Iterable[Row]) -> list[Candidate]:
    """One candidate per configuration, averaged over its seeds."""
    out = []
    for group in by_spec(compared(rows)).values():
        latencies = [i.row["latency_us_p50"] for i in group if i.row.get("latency_us_p50")]
        row = group[0].row
        out.append(Candidate(
            spec=row["spec"], strategy=row["strategy"], family=row["family"], seeds=len(group),
            size_kb=mean_std([i.row["size_bytes"] / 1024 for i in group])[0],
            latency_us=mean_std(latencies)[0] if len(latencies) == len(group) else None,
            accuracy=mean_std([i.row["accuracy"] for i in group])[0],
            accuracy_drop_pp=-mean_std([i.delta_pp for i in group])[0],
        ))
    return out


def recommend(
    rows: Iterable[Row],
    *,
    max_size_kb: float | None = None,
    max_latency_us: float | None = None,
    max_accuracy_drop: float | None = None,
    objective: str = "size",
) -> Recommendation:
    """The best configuration meeting every constraint; raises NothingQualifies otherwise."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    limits = Constraints(max_size_kb, max_latency_us, max_accuracy_drop)
    pool = sorted(candidates(rows), key=lambda c: c.sort_key(objective))
    if not pool:
        raise NothingQualifies("no finished rows with a baseline to compare against")
    feasible = [c for c in pool if not limits.misses(c)]
    if not feasible:
        closest = min(pool, key=lambda c: (sum(excess for _, excess in limits.misses(c)), c.spec))
        missed = "; ".join(text for text, _ in limits.misses(closest))
        raise NothingQualifies(
            f"nothing meets every constraint; closest is {closest.strategy} (`{closest.spec}`), "
            f"which misses {missed}"
        )
    best = feasible[0]
    better = pool[: pool.index(best)]  # preferred on the objective but excluded
    binding = None
    if better:  # the next-better option: what would have to give to get it
        nearest = better[-1]
        binding = "; ".join(text for text, _ in limits.misses(nearest)) + \
            f", which rules out {nearest.strategy}"
    runner_up = feasible[1] if len(feasible) > 1 else None
    return Recommendation(best, runner_up, binding, objective)
