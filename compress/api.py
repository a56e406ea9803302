"""The Python entry point: ``compare`` does exactly what ``compress run`` does."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.common.errors import UserError
from compress.orchestrate.config import RunConfig, resolve_config
from compress.orchestrate.run import Progress, RunInterrupted, RunResult, run
from compress.orchestrate.steps import ERROR_LOG
from compress.results.rows import RUN_MANIFEST

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
    ``out``, ``overwrite``); what is
    left out takes the preset's value, else the default, exactly as on the command line.
    The run folder is in ``frame.attrs["run_dir"]``, the verdicts on the document's claims
    (claims.csv's rows) in ``frame.attrs["claims"]``.
    """
    import pandas as pd

    from compress.report.build import CLAIMS_FILE

    if strategies is not None and not isinstance(strategies, str) and len(strategies) == 0:
        raise UserError("strategies is empty; give at least one, or leave it out for the default ones")
    seeds = None if seed is None else [seed] if isinstance(seed, numbers.Integral) else list(seed)
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
    """Raw rows of the table a run read (its columns, in raw units), as that run's models take
    them: the encoding each seed fitted on its train split, from run.json.  A deployment of one
    of the run's .tflite files applies this to every row first."""
    import json

    from compress.data.userdata import encode_rows as encode

    manifest = Path(run) / RUN_MANIFEST
    try:
        encodings = json.loads(manifest.read_text(encoding="utf-8")).get("input_encoding") or {}
    except (OSError, ValueError, AttributeError):
        raise UserError(f"{manifest} is missing or damaged; give a run folder compress wrote") from None
    if str(seed) not in encodings:
        raise UserError(f"{run} holds no table encoding for seed {seed} (it has: "
                        f"{', '.join(encodings) or 'none: its data was not a table'})")
    return encode(encodings[str(seed)], rows)


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
