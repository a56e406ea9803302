"""The Python entry point: ``compare`` does exactly what ``compress run`` does."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.common.errors import UserError
from compress.orchestrate.config import RunConfig, default_jobs, resolve_config
from compress.orchestrate.executors import spawn_safe_caller
from compress.orchestrate.run import Progress, RunInterrupted, RunResult, run
from compress.orchestrate.steps import ERROR_LOG

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _import_report() -> None:
    """The report's modules (matplotlib, SciPy's statistics, adjustText: 1.3 to 3 s), imported
    during the run on a core a finished worker freed, instead of after it."""
    from scipy import stats  # noqa: F401  (imported by compress.common.stats on first use)

    import compress.report.build  # noqa: F401


def execute(config: RunConfig, progress: Progress | None = None) -> RunResult:
    """Run, then build the report from the saved results: the whole ``compress run``.

    An interrupted run still gets a report of its finished rows, marked incomplete.
    """
    try:
        result = run(config, progress, meanwhile=_import_report)
    except RunInterrupted as stop:
        if stop.result.rows:
            _build_report(stop.result.out)
        raise
    _build_report(result.out)
    return result


def _build_report(folder: Path) -> None:
    from compress.report.build import build_report

    build_report(folder)


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
    ``scenario``, ``target_train``, ``preset``, ``threads``, ``jobs``, ``time_budget`` (minutes),
    ``out``, ``overwrite``, ``resume``, ``executor``, ``address``); what is left out takes the
    preset's value, else the default, exactly as on the command line (``jobs``: ``$COMPRESS_JOBS``,
    else one worker per core; a script that calls this at its top level, outside
    ``if __name__ == "__main__":``, would be re-run by every spawned worker, so it trains in one
    process and is told why).
    The run folder is in ``frame.attrs["run_dir"]``, the verdicts on the document's claims
    (claims.csv's rows) in ``frame.attrs["claims"]``.
    """
    import pandas as pd

    from compress.report.build import CLAIMS_FILE

    if strategies is not None and not isinstance(strategies, str) and len(strategies) == 0:
        raise UserError("strategies is empty; give at least one, or leave it out for the default ones")
    seeds = None if seed is None else [seed] if isinstance(seed, numbers.Integral) else list(seed)
    if options.get("jobs") is None and default_jobs() > 1 and not spawn_safe_caller():
        warnings.warn("compress.compare() was called at the top level of a script, which every "
                      "spawned worker would run again; it trains in this process (one job). Put the "
                      "call under `if __name__ == \"__main__\":` for one worker per core, or pass jobs=1 "
                      "to silence this", RuntimeWarning, stacklevel=2)
        options["jobs"] = 1
    config = resolve_config(dataset=dataset, strategies=strategies, seeds=seeds, **options)
    result = execute(config)
    failed = [row["label"] for row in result.rows if row["status"] == "failed"]
    if failed:  # where the CLI exits 1: the frame is whole, but the caller should know
        warnings.warn(f"{len(failed)} of {len(result.rows)} rows failed ({', '.join(sorted(set(failed)))}); "
                      f"each says why in the frame's reason column, with tracebacks in "
                      f"{result.out / ERROR_LOG}", RuntimeWarning, stacklevel=2)
    frame = pd.DataFrame(result.rows)
    frame.attrs["run_dir"] = str(result.out)
    frame.attrs["claims"] = pd.read_csv(result.out / CLAIMS_FILE).to_dict("records")
    return frame


def encode_rows(run: Path | str, rows: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Raw rows of the table a run, sweep or tune read (its columns, in raw units), as that
    folder's models take them: the encoding each seed fitted on its train split, from run.json.
    A deployment of one of the folder's .tflite files applies this to every row first."""
    from compress.data.userdata import encode_rows as encode
    from compress.results.manifest import RunManifest

    manifest = RunManifest.read(Path(run))
    if manifest is None:
        raise UserError(f"{Path(run)} holds no run.json; give a folder compress run, sweep or tune wrote")
    encoding = manifest.encoding(seed)
    if encoding is None:
        kept = ", ".join((manifest.input_encoding or {}).keys())
        why = f"it has seeds {kept}" if kept else (
            "none: its data was not a table, or the folder was written before sweeps and tunes kept "
            "their encoding (run the same command again into a new folder)")
        raise UserError(f"{run} holds no table encoding for seed {seed} ({why})")
    return encode(encoding, rows)


def sensitivity(
    *,
    precisions: str | Sequence[str] = ("int8", "int4", "int2"),
    sparsities: float | Sequence[float] = (0.8,),
    layers: Sequence[str] | None = None,
    seed: int = 0,
    **options: Any,
) -> Path:
    """``compress sensitivity``: each layer of the teacher alone quantized or pruned, scored on
    the validation split only; writes sensitivity.csv and sensitivity.png, returns the folder.

    ``options`` choose the data and teacher as for ``compare`` (``dataset``, ``data``,
    ``teacher``, ``teacher_architecture``, ``out``, ...).
    """
    from compress.orchestrate.config import default_out_dir
    from compress.orchestrate.sensitivity import check_settings, layer_sensitivity, write_sensitivity
    from compress.orchestrate.teachers import check_teacher, load_source, teacher_for
    from compress.results.outdir import check_output, open_output

    precisions, sparsities = check_settings(precisions, sparsities)
    layers = [layers] if isinstance(layers, str) else layers
    config = resolve_config(seeds=[seed], **options)
    source = load_source(config, seed)
    target = config.out or default_out_dir(f"sensitivity-{source.dataset.name}")
    check_output(target, "sensitivity", overwrite=config.overwrite)
    teacher = teacher_for(config, source, seed)
    check_teacher(config, seed, teacher, source.dataset, {})
    rows = layer_sensitivity(teacher.model, source.dataset.training, precisions=precisions,
                             sparsities=sparsities, layers=layers)
    output = open_output(target, "sensitivity", overwrite=config.overwrite)
    write_sensitivity(rows, output.folder)
    return output.commit()
