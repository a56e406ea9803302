"""The Python entry point: ``compare`` does exactly what ``compress run`` does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from compress.report import build_report
from compress.runner import DEFAULT_STRATEGIES, Progress, RunConfig, RunInterrupted, RunResult, run


def execute(config: RunConfig, progress: Progress | None = None) -> RunResult:
    """Run, then build the report from the saved results: the whole ``compress run``.

    An interrupted run still gets a report of its finished rows, marked incomplete.
    """
    try:
        result = run(config, progress)
    except RunInterrupted as stop:
        if stop.result.rows:
            build_report(stop.result.out)
        raise
    build_report(result.out)
    return result


def compare(
    dataset: str = "synthetic",
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    seed: int | Sequence[int] = 0,
    *,
    epochs: int | None = None,
    threads: int = 1,
    out: Path | str | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Run the strategies, write results and report, and return one row per strategy and seed.

    ``seed`` is one seed or a list of seeds; every seed gets its own splits and teacher.

    The run folder is in ``frame.attrs["run_dir"]``.
    """
    result = execute(RunConfig(
        dataset=dataset, strategies=list(strategies),
        seeds=[seed] if isinstance(seed, int) else list(seed), epochs=epochs,
        threads=threads, out=Path(out) if out is not None else None, overwrite=overwrite,
    ))
    frame = pd.DataFrame(result.rows)
    frame.attrs["run_dir"] = str(result.out)
    return frame
