"""The Python entry point: ``compare`` does exactly what ``compress run`` does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from compress.report import CLAIMS_FILE, build_report
from compress.runner import Progress, RunConfig, RunInterrupted, RunResult, resolve_config, run


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
    dataset: str | None = None,
    strategies: Sequence[str] | None = None,
    seed: int | Sequence[int] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Everything ``compress run`` does, from Python: run, write results and report, and return
    one row per strategy and seed.

    ``seed`` is one seed or a list of seeds; every seed gets its own splits and teacher.
    ``options`` are ``resolve_config``'s keywords, named as the CLI's options (``data``,
    ``target``, ``missing``, ``teacher``, ``trust_model``, ``allow_weak_teacher``, ``epochs``,
    ``scenario``, ``target_train``, ``preset``, ``threads``, ``out``, ``overwrite``); what is
    left out takes the preset's value, else the default, exactly as on the command line.
    The run folder is in ``frame.attrs["run_dir"]``, the verdicts on the document's claims
    (claims.csv's rows) in ``frame.attrs["claims"]``.
    """
    seeds = None if seed is None else [seed] if isinstance(seed, int) else list(seed)
    config = resolve_config(dataset=dataset, strategies=strategies, seeds=seeds, **options)
    result = execute(config)
    frame = pd.DataFrame(result.rows)
    frame.attrs["run_dir"] = str(result.out)
    frame.attrs["claims"] = pd.read_csv(result.out / CLAIMS_FILE).to_dict("records")
    return frame
