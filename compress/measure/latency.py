"""Latency: every model of a seed timed together, in interleaved rounds, with paired speed-ups.

This module knows nothing of strategies: it times flatbuffers.  Rounds the machine disturbed
(the thread waited for a core) are counted and left out of the figures; see docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from compress.common.errors import UserError
from compress.common.stats import (
    STEADY_TOLERANCE,
    Spread,
    median_ci,
    paired_ratio,
    rounds_faster,
    steady_rounds,
    summarize_rounds,
)
from compress.models.flatbuffer import DEFAULT_THREADS, TFLiteModel

DISTURBED = 0.20  # a round that spent 20% of its wall time off the CPU waited for a core
#: Rounds go on for at least this long: a slowed core (another tenant on the host) comes and
#: goes in periods this span outlasts, so a shorter run can fall wholly inside one (measured:
#: docs/benchmarks.md, "On a busy machine, and between processes (issue 18)").
#: ``$COMPRESS_LATENCY_SPAN`` changes it (0: just the rounds asked for, for quick looks).
SPAN_SECONDS = 3.0
#: Below this many rounds steady for both models, the speed-up pairs every round instead.
MIN_STEADY_PAIRS = 5
#: Fewer steady rounds than this share earn a warning: the fast level was rare, and may be the
#: exception rather than the slowed rounds (the share steady varies from process to process;
#: measured: docs/benchmarks.md, "On a busy machine, and between processes (issue 18)").
UNSTEADY_SHARE = 0.25


@dataclass(frozen=True)
class LatencyStats:
    spread: Spread
    speedup: float | None
    speedup_ci_low: float | None
    speedup_ci_high: float | None
    #: Paired rounds in which the model was faster than the reference, of those that differ:
    #: the counts an exact sign test (pooled over seeds) needs.
    speedup_rounds_faster: int | None
    speedup_rounds: int | None
    throughput_sps: float
    warning: str | None
    #: CPU time per call (the measuring thread's own, ``thread_time_ns``): what the model costs,
    #: whatever else the machine runs; median of the steady rounds' means, with its 95% interval.
    cpu_us: float | None = None
    cpu_us_ci_low: float | None = None
    cpu_us_ci_high: float | None = None
    #: Rounds that spent more than ``DISTURBED`` of their wall time off the CPU: the thread
    #: waited for a core (preemption), so their wall-clock figures measure the scheduler.
    disturbed_rounds: int = 0

    def fields(self) -> dict[str, float | str | None]:
        """The result-row fields, named as in ``compress.results.rows.FIELDS``."""
        spread = self.spread
        return {
            "latency_us_p50": spread.p50, "latency_us_p50_ci_low": spread.p50_ci_low,
            "latency_us_p50_ci_high": spread.p50_ci_high, "latency_us_p95": spread.p95,
            "latency_us_p99": spread.p99, "latency_us_iqr": spread.iqr,
            "latency_warning": self.warning, "speedup": self.speedup,
            "speedup_ci_low": self.speedup_ci_low, "speedup_ci_high": self.speedup_ci_high,
            "speedup_rounds_faster": self.speedup_rounds_faster, "speedup_rounds": self.speedup_rounds,
            "throughput_sps": self.throughput_sps, "latency_cpu_us": self.cpu_us,
            "latency_cpu_us_ci_low": self.cpu_us_ci_low, "latency_cpu_us_ci_high": self.cpu_us_ci_high,
            "latency_disturbed_rounds": self.disturbed_rounds, "latency_rounds": spread.rounds,
            "latency_steady_rounds": spread.steady_rounds,
        }


@contextlib.contextmanager
def pinned_to_one_core() -> Iterator[int | None]:
    """Pin the calling thread to one core: unpinned, a timing loop jumps between rounds
    (measured: docs/benchmarks.md, "How each number is measured")."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    core = max(allowed)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)


def _warm_up(model: TFLiteModel, inputs: list[np.ndarray], calls: int, seconds: float) -> float:
    """Run until both the call count and the time are reached; return seconds per call."""
    done, start = 0, time.perf_counter()
    while done < calls or time.perf_counter() - start < seconds:
        model.call(inputs[done % len(inputs)])
        done += 1
    return (time.perf_counter() - start) / done


def _throughput(flatbuffer: bytes, x: np.ndarray, batch: int, threads: int) -> float:
    """Rows a second at ``batch``, or at the batch a fixed-batch file runs."""
    model = TFLiteModel(flatbuffer, threads=threads)
    batch = batch if model.resizable else model.input_batch
    rows = np.resize(x, (batch, *x.shape[1:]))
    model.resize(batch)
    encoded = model.encode(rows)
    per_call = _warm_up(model, [encoded], calls=3, seconds=0.02)
    repeats = max(5, int(0.05 / max(per_call, 1e-9)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        model.call(encoded)
        times.append(time.perf_counter_ns() - start)
    return batch / (float(np.median(times)) / 1e9)


def latency_span() -> float:
    """Seconds the timing rounds span at least: ``$COMPRESS_LATENCY_SPAN``, or ``SPAN_SECONDS``."""
    given = os.environ.get("COMPRESS_LATENCY_SPAN")
    if given is None:
        return SPAN_SECONDS
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise UserError(f"COMPRESS_LATENCY_SPAN must be a number of seconds, 0 or more, got "
                        f"{given!r}; unset it for the default {SPAN_SECONDS:g}")
    return seconds


def measure_latency(
    models: Mapping[str, bytes],
    x: np.ndarray,
    *,
    reference: str | None = None,
    threads: int = DEFAULT_THREADS,
    rounds: int = 30,
    round_seconds: float = 0.01,
    span_seconds: float | None = None,
    warmup_calls: int = 50,
    warmup_seconds: float = 0.1,
    throughput_batch: int = 256,
) -> dict[str, LatencyStats]:
    """Batch-1 latency of several models with interleaved rounds (A B C, B C A, ...).

    Each call times set_tensor + invoke + get_tensor.  Interleaving makes machine drift hit
    every model alike, and lets the speed-up against ``reference`` be computed per round,
    paired.  At least ``rounds`` rounds run, over at least ``span_seconds`` (None:
    ``latency_span()``); the figures come from the steady rounds (``common.stats.steady_rounds``).
    """
    if not models:
        return {}
    span = latency_span() if span_seconds is None else span_seconds
    names = list(models)
    loaded = {name: TFLiteModel(models[name], threads=threads) for name in names}
    inputs = {name: [m.encode(x[i : i + 1]) for i in range(min(len(x), 64))] for name, m in loaded.items()}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}  # per round: CPU µs per call
    waited: dict[str, list[float]] = {name: [] for name in names}  # per round: share off the CPU
    with pinned_to_one_core():
        calls = {}
        for name, model in loaded.items():
            per_call = _warm_up(model, inputs[name], warmup_calls, warmup_seconds)
            calls[name] = max(5, int(round_seconds / max(per_call, 1e-9)))
        round_index, began = 0, time.perf_counter()
        while round_index < rounds or time.perf_counter() - began < span:
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                model, batch = loaded[name], inputs[name]
                times = np.empty(calls[name], dtype=np.int64)
                cpu_start, wall_start = time.thread_time_ns(), time.perf_counter_ns()
                for i in range(calls[name]):
                    start = time.perf_counter_ns()
                    model.call(batch[i % len(batch)])
                    times[i] = time.perf_counter_ns() - start
                used = time.thread_time_ns() - cpu_start
                waited[name].append(1 - used / max(time.perf_counter_ns() - wall_start, 1))
                cpu[name].append(used / calls[name] / 1000.0)
                samples[name].append(times / 1000.0)
            round_index += 1
        throughput = {name: _throughput(models[name], x, throughput_batch, threads) for name in names}
    steady = {name: steady_rounds(samples[name]) for name in names}
    results = {}
    for name in names:
        spread = summarize_rounds(samples[name], steady[name])
        ratio: tuple[float | None, ...] = (None, None, None, None, None)
        if reference is not None and reference in samples:
            ratio = _paired_speedup(samples[reference], samples[name], steady[reference] & steady[name])
        steady_cpu = np.asarray(cpu[name])[steady[name]]
        cpu_low, cpu_high = median_ci(steady_cpu)
        disturbed = sum(share > DISTURBED for share in waited[name])
        results[name] = LatencyStats(spread, *ratio, throughput[name], latency_warning(spread, disturbed),
                                     float(np.median(steady_cpu)), cpu_low, cpu_high, disturbed)
    return results


def latency_warning(spread: Spread, disturbed: int) -> str | None:
    """What a row should say about the machine it was timed on, if anything."""
    if disturbed > spread.rounds * DISTURBED:
        return (f"busy machine: {disturbed} of {spread.rounds} rounds spent over {DISTURBED:.0%} of "
                f"their time waiting for a core; the figures are the {spread.steady_rounds} rounds "
                f"within {STEADY_TOLERANCE:.0%} of the fastest, and CPU time per call "
                "(latency_cpu_us) is the cross-check")
    if spread.steady_rounds < spread.rounds * UNSTEADY_SHARE:
        return (f"unsteady machine: {spread.rounds - spread.steady_rounds} of {spread.rounds} rounds "
                f"ran over {STEADY_TOLERANCE:.0%} slower than the fastest (another process, or a "
                f"slowed core); the figures are the other {spread.steady_rounds}'s")
    return None


def _paired_speedup(reference: list[np.ndarray], candidate: list[np.ndarray],
                    both_steady: np.ndarray) -> tuple[float, float, float, int, int]:
    """Speed-up and sign-test counts over the rounds steady for both models (every round if
    too few are): a round the machine slowed for one of the pair says nothing of the pair."""
    if both_steady.sum() < MIN_STEADY_PAIRS:
        both_steady = np.ones(len(reference), dtype=bool)
    pairs = [(r, c) for r, c, keep in zip(reference, candidate, both_steady, strict=True) if keep]
    kept_reference, kept_candidate = [r for r, _ in pairs], [c for _, c in pairs]
    return (*paired_ratio(kept_reference, kept_candidate), *rounds_faster(kept_reference, kept_candidate))
