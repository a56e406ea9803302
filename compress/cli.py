"""Thin click commands: parse, validate, call the library, print.

Heavy modules are imported inside the commands, so ``compress --help`` and
``compress report`` never load TensorFlow.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from compress import __version__
from compress.common.errors import UserError, flag_names

DATASETS = ("synthetic", "document", "digits")


class OneLineErrors(click.Group):
    """Every usage or input error becomes one line on stderr and exit code 2."""

    #: What click >= 8.2 raises for a bare ``compress``; older versions print the help and exit 0.
    no_command: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            with flag_names():  # errors name --flags, not the Python keywords
                return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as stop:
            code = stop.exit_code
        except self.no_command:  # its message would be the whole help
            click.echo(f"compress: error: no command given; choose one of {', '.join(self.commands)} "
                       "(compress --help describes them)", err=True)
            code = 2
        except click.ClickException as error:
            click.echo(f"compress: error: {_one_line(error.format_message())}", err=True)
            code = error.exit_code
        except UserError as error:
            click.echo(f"compress: error: {_one_line(str(error))}", err=True)
            code = 2
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("compress: interrupted", err=True)
            code = 130
        if standalone_mode:
            _exit_on_interrupt()
            sys.exit(code)
        return code


def _exit_on_interrupt() -> None:
    """Everything is written: a Ctrl-C while the interpreter shuts down (TensorFlow and the pool
    take a moment) exits 130 at once, instead of a KeyboardInterrupt that Python turns into death
    by SIGINT (exit -2) from inside the shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupted(signum: int, frame: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, interrupted)


def _one_line(message: str) -> str:
    return " ".join(message.split())


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def cli() -> None:
    """Compare model compression techniques on one dataset, one teacher, one measurement."""


@cli.command()
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="Built-in dataset: synthetic (the document's generator, 2,000 rows, a 1,000-row "
              "test split), document (its exact 1,000 rows) or digits (8x8 images).  "
              "[default: synthetic]")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Your own .csv, .tsv, .parquet or .npz (arrays x, y[, x_test, y_test]) instead, or an "
              "image folder with one sub-folder per class (PNG/JPEG/BMP/GIF; train/ with test/ or "
              "val/ sub-folders keep a given test split).")
@click.option("--image-size", default=None, metavar="H,W",
              help="Resize an image folder's images to H,W.  [default: their most common size]")
@click.option("--target", default=None, help="The label column of a .csv or .parquet --data file.")
@click.option("--missing", type=click.Choice(["error", "drop", "impute"]), default=None,
              help="Missing cells: stop, drop their rows, or impute (median / most frequent, "
              "fitted on the train split). Counts are always reported.  [default: error]")
@click.option("--teacher", type=click.Path(path_type=Path), default=None,
              help="Your trained Keras classifier as the teacher: a .keras file (Keras 3 or tf_keras) "
              "or a SavedModel folder.")
@click.option("--teacher-arch", default=None, metavar="SPEC",
              help="The built-in teacher to train: mlp:128,64 (any data), cnn:32,64:128 (images), "
              "cnn1d:32,64,64:64 (sequences) or dsres:16,32 (depthwise-separable residual, images). "
              "Default: by the data's kind.")
@click.option("--trust-model", is_flag=True,
              help="Allow .h5, pickles and Lambda/custom layers in --teacher (they can run code).")
@click.option("--allow-weak-teacher", is_flag=True,
              help="Go on when the teacher is not clearly better than predicting the majority class.")
@click.option("--strategy", "strategies", multiple=True, metavar="SPEC",
              help="NAME or NAME:key=value,... (wildcards allowed); repeat for more. "
              "Default: one strategy per technique plus controls.")
@click.option("--seed", type=int, default=None,
              help="Fixes data, splits, initialisation and training.  [default: 0]")
@click.option("--seeds", "n_seeds", type=int, default=None,
              help="Run seeds 0..N-1 and report means with intervals over them.")
@click.option("--epochs", type=int, default=None,
              help="Override the epochs of the teacher and of every strategy that trains "
              "(e.g. --epochs 1 for a quick look); controls always match their technique.")
@click.option("--scenario", type=click.Choice(["standard", "shift"]), default=None,
              help="'shift': the teacher learns a source domain; fine-tuning adapts it to a shifted "
              "target with few labels, against training from scratch.  [default: standard]")
@click.option("--target-train", type=int, default=None,
              help="Labelled target rows in --scenario shift.  [default: 100]")
@click.option("--preset", type=click.Choice(["document", "deep-compression"]), default=None,
              help="Named settings: 'document' reproduces the source document's distillation "
              "scenario over 5 seeds; 'deep-compression' sets prune > cluster > int8 beside each "
              "stage alone. Options given explicitly still win.")
@click.option("--threads", type=int, default=None,
              help="LiteRT interpreter threads for accuracy and latency.  [default: 1]")
@click.option("--jobs", type=int, default=None, envvar="COMPRESS_JOBS",
              help="Worker processes that train strategies side by side (rows are identical for "
              "any count; latency is timed afterwards, alone). 1: all in this process.  "
              "[default: the core count, or $COMPRESS_JOBS]")
@click.option("--time-budget", type=float, default=None, metavar="MIN",
              help="Minutes for all training (the teacher's included; timing and the report come "
              "after): each strategy gets a share by its cost, stops when it is spent, and its row "
              "says so.  [default: no limit]")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder: new, empty, or an earlier run with --overwrite. "
              "Default: reports/<dataset>-<timestamp>.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (swapped in at the end).")
def run(dataset: str | None, data: Path | None, image_size: str | None, target: str | None,
        missing: str | None, teacher: Path | None, teacher_arch: str | None, trust_model: bool,
        allow_weak_teacher: bool,
        strategies: tuple[str, ...], seed: int | None, n_seeds: int | None, epochs: int | None,
        scenario: str | None, target_train: int | None, preset: str | None, threads: int | None,
        jobs: int | None, time_budget: float | None, out: Path | None, overwrite: bool) -> None:
    """Compress the teacher with every selected strategy and write a report."""
    if seed is not None and n_seeds is not None:
        raise UserError("give --seed or --seeds, not both")
    if n_seeds is not None and n_seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {n_seeds}")
    if seed is not None and seed < 0:
        raise UserError(f"--seed must be 0 or more, got {seed}")
    from compress.api import execute
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.run import RunInterrupted

    config = resolve_config(
        dataset=dataset, data=data, image_size=image_size, target=target, missing=missing,
        teacher=teacher, teacher_architecture=teacher_arch, trust_model=trust_model,
        allow_weak_teacher=allow_weak_teacher, strategies=strategies,
        seeds=n_seeds if n_seeds is not None else None if seed is None else [seed], epochs=epochs,
        scenario=scenario, target_train=target_train, preset=preset, threads=threads,
        jobs=jobs if jobs is not None else os.cpu_count() or 1, time_budget=time_budget, out=out,
        overwrite=overwrite, command=shlex.join(["compress", *sys.argv[1:]]),
    )
    with _progress() as progress:
        try:
            result = execute(config, progress)
        except RunInterrupted as stop:
            said = "the report there is marked incomplete" if stop.result.rows else "no report"
            click.echo(f"compress: {stop}; {said}", err=True)
            sys.exit(130)
    _finish(result.out, result.rows)
    if result.failed:
        sys.exit(1)


def _finish(folder: Path, rows: list[dict[str, Any]]) -> None:
    """The end of run and sweep: problems, a compact summary, the recommendation, the reports."""
    from compress.report.summary import summary

    for row in rows:
        if row["status"] != "ok":
            click.echo(f"{row['label'] or row['spec']} (seed {row['seed']}): {row['status']}: "
                       f"{row['reason']}", err=True)
    _console().print(summary(rows))
    click.echo(f"report: {folder / 'report.md'}")
    click.echo(f"html:   {folder / 'report.html'}")
    click.echo(f"next:   compress recommend {folder} --max-accuracy-drop 1 --objective latency")


@contextmanager
def _progress() -> Iterator[Any]:
    """A live bar on a terminal; one line per finished step with the elapsed time otherwise."""
    console = _stderr_console()
    if not console.is_terminal:
        start, logged = time.monotonic(), [0]

        def log(done: int, total: int, what: str) -> None:
            """One line per finished step (a call that advances ``done``)."""
            if done > logged[0] and what != "done":
                console.print(f"[{time.monotonic() - start:7.1f}s] {done}/{total} {what}",
                              highlight=False, markup=False)
            logged[0] = done

        yield log
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=console) as bar:
        task = bar.add_task("starting", total=1)

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        yield update


def _console() -> Any:
    """Standard output; piped, wide enough that the summary table is not cut to 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)


def _stderr_console() -> Any:
    """Progress on stderr; piped to a file or a CI log, one line per message, never wrapped."""
    from rich.console import Console

    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console


@cli.command(name="list")
def list_strategies() -> None:
    """Show every available strategy with its family and what it does."""
    from compress.strategies import registry

    strategies = registry()
    width = max(len(name) for name in strategies)
    for name, cls in strategies.items():
        click.echo(f"{name:<{width}}  {cls.family:<13} {cls.summary}")


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the report: new, empty or an earlier report. Default: the run's own "
              "folder for one run, reports/merged-<time> for several.")
@click.option("--format", "formats", default="md,html", show_default=True,
              help="Comma-separated: md, html, csv.")
@click.option("--allow-mixed", is_flag=True,
              help="Merge runs of different datasets or teachers: one section each.")
def report(results: tuple[Path, ...], out: Path | None, formats: str, allow_mixed: bool) -> None:
    """Rebuild the report from saved results (several runs are merged); no TensorFlow needed."""
    from compress.report.build import build_report, report_formats

    folder = build_report(list(results), out, formats, allow_mixed=allow_mixed)
    for written in report_formats(formats):
        click.echo(f"report: {folder / f'report.{written}'}")


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--max-size-kib", type=float, default=None,
              help="Largest acceptable TFLite file, in KiB (1024 bytes).")
@click.option("--max-latency-us", type=float, default=None, help="Slowest acceptable p50 latency.")
@click.option("--max-accuracy-drop", type=float, default=None,
              help="Largest acceptable accuracy loss against the teacher, in percentage points. "
              "Default: the report's budget (1); 100 ignores accuracy.")
@click.option("--objective", type=click.Choice(["size", "latency", "accuracy"]), default="size",
              show_default=True, help="What to optimise among the configurations that qualify.")
def recommend(results: tuple[Path, ...], max_size_kib: float | None, max_latency_us: float | None,
              max_accuracy_drop: float | None, objective: str) -> None:
    """Pick the best method for your constraints from saved results (controls never qualify)."""
    from compress.analysis.recommend import DEFAULT_MAX_DROP_PP, NothingQualifies
    from compress.analysis.recommend import recommend as pick
    from compress.results.rows import read_runs, unfinished_runs

    for folder in unfinished_runs(results):
        click.echo(f"warning: {folder} stopped early: the strategies it did not finish are not "
                   "among the candidates", err=True)
    if max_accuracy_drop is None:  # as the report chooses: a model that lost 60 points is no answer
        max_accuracy_drop = DEFAULT_MAX_DROP_PP

    rows = read_runs(results)
    try:
        choice = pick(rows, max_size_kib=max_size_kib, max_latency_us=max_latency_us,
                      max_accuracy_drop=max_accuracy_drop, objective=objective)
    except NothingQualifies as answer:
        click.echo(f"compress: {answer}", err=True)
        sys.exit(1)
    click.echo(choice.explain())


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", default=None, metavar="DATASET|FILE.npz",
              help="Inputs (and labels): a built-in dataset's test split or an .npz with x, y. "
              "Default: seeded random inputs, no accuracy.")
@click.option("--threads", type=int, default=1, show_default=True, help="Interpreter threads.")
@click.option("--batch", type=int, default=256, show_default=True, help="Batch size for throughput.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per model.")
def bench(models: tuple[Path, ...], data: str | None, threads: int, batch: int, as_json: bool) -> None:
    """Time and size .tflite (or .keras) models; ratios are against the first model."""
    import json

    from compress.orchestrate.bench import bench as run_bench
    from compress.orchestrate.bench import bench_table
    from compress.report.document import Table

    rows = run_bench(list(models), data=data, threads=threads, batch=batch)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(Table(bench_table(rows)).markdown())
    click.echo(f"inputs: {rows[0]['inputs']}", err=True)
    for row in rows:
        if row["latency_warning"]:
            click.echo(f"warning: {row['artifact']}: {row['latency_warning']}", err=True)


def _data_options(command: Any) -> Any:
    """The data and teacher options of sensitivity and tune (run documents them at length)."""
    options = [
        click.option("--dataset", type=click.Choice(DATASETS), default=None, help="Built-in dataset."),
        click.option("--data", type=click.Path(path_type=Path), default=None,
                     help="Your .csv, .tsv, .parquet or .npz, or an image folder (a sub-folder per class)."),
        click.option("--image-size", default=None, metavar="H,W",
                     help="Resize an image folder's images to H,W."),
        click.option("--target", default=None, help="The label column of a .csv or .parquet --data file."),
        click.option("--missing", type=click.Choice(["error", "drop", "impute"]), default=None,
                     help="Missing cells: stop, drop their rows, or impute.  [default: error]"),
        click.option("--teacher", type=click.Path(path_type=Path), default=None, help="Your trained model."),
        click.option("--teacher-arch", "teacher_architecture", default=None, metavar="SPEC",
                     help="The built-in teacher to train."),
        click.option("--trust-model", is_flag=True, help="Allow files that can run code in --teacher."),
        click.option("--allow-weak-teacher", is_flag=True,
                     help="Go on with a teacher near the majority rate."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@_data_options
@click.option("--precision", "precisions", multiple=True, metavar="BITS",
              help="int8, int4 or int2; repeat for more.  [default: int8, int4, int2]")
@click.option("--sparsity", "sparsities", multiple=True, type=float,
              help="Pruning sparsity for one layer at a time; repeat for more.  [default: 0.8]")
@click.option("--layer", "layers", multiple=True, help="Only these layers (names); repeat for more.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes data splits and the teacher.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for sensitivity.csv and .png. Default: reports/sensitivity-<data>-<time>.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier sensitivity folder.")
def sensitivity(precisions: tuple[str, ...], sparsities: tuple[float, ...], layers: tuple[str, ...],
                seed: int, out: Path | None, overwrite: bool, **data: Any) -> None:
    """Per-layer sensitivity of the teacher, on the validation split only: each layer alone
    quantized (int8/int4/int2) or pruned, with its share of bytes and MACs."""
    from compress.api import sensitivity as measure_layers

    folder = measure_layers(
        precisions=precisions or ("int8", "int4", "int2"), sparsities=sparsities or (0.8,),
        layers=layers or None, seed=seed, out=out, overwrite=overwrite, **data)
    click.echo(f"sensitivity: {folder / 'sensitivity.csv'}")


def _executor(executor: str, jobs: int | None, address: str | None) -> Any:
    """The worker pool of sweep and tune, its options checked."""
    from compress.orchestrate.executors import DaskExecutor, LocalExecutor

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if address and executor != "dask":
        raise UserError("--address is for --executor dask")
    return DaskExecutor(jobs, address) if executor == "dask" else LocalExecutor(jobs)


def _executor_options(command: Any) -> Any:
    options = [
        click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
                     show_default=True, help="local: a process pool on this machine; dask: "
                     "dask.distributed."),
        click.option("--jobs", type=int, default=None, help="Parallel workers. Default: the core count."),
        click.option("--address", default=None, help="Dask scheduler (or set DASK_SCHEDULER_ADDRESS); "
                     "without one a LocalCluster is started."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _slowdown(text: str) -> float | None:
    """--max-slowdown: a number of times the teacher's latency, or 'none'."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--max-slowdown must be a number (1: never slower than the teacher) or "
                        f"'none', got {text!r}") from None


@cli.command()
@_data_options
@click.option("--max-accuracy-drop", type=float, required=True,
              help="Largest acceptable accuracy loss against the teacher, in percentage points.")
@click.option("--objective", type=click.Choice(["size", "latency"]), default="size", show_default=True,
              help="size: the smallest gzip file; latency: the fastest at batch 1.")
@click.option("--max-slowdown", default="1", show_default=True, metavar="X",
              help="The slowest the choice may run at batch 1, in times the teacher's latency "
              "(1: never slower); 'none': speed does not matter.")
@click.option("--time-budget", type=float, default=15.0, show_default=True, metavar="MIN",
              help="Minutes for the whole tune, the final measurement included; it decides only how "
              "many trials run (tune.json records it, and --trials N repeats the same search).")
@click.option("--trials", "max_trials", type=int, default=None,
              help="Stop after this many trials (else the time budget decides).")
@click.option("--strategy", "strategies", multiple=True, metavar="PATTERN",
              help="Only these strategies (wildcards allowed) as stages; repeat for more. "
              "Default: every tunable strategy.")
@click.option("--seeds", type=int, default=3, show_default=True,
              help="Seeds the chosen configuration and the front are measured on, on the test split.")
@_executor_options
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Tune folder; re-running into it replays every finished trial. "
              "Default: reports/tune-<data>.")
def tune(max_accuracy_drop: float, objective: str, max_slowdown: str, time_budget: float,
         max_trials: int | None, strategies: tuple[str, ...], seeds: int, executor: str, jobs: int | None,
         address: str | None, out: Path | None, **data: Any) -> None:
    """Search every strategy and chain for the smallest (or fastest) model within an accuracy
    budget: trials on the validation split, the choice measured on the test split."""
    from compress.orchestrate.tune import NothingMeetsBudget, TuneInterrupted
    from compress.orchestrate.tune import tune as search
    from compress.orchestrate.tune_space import TuneSettings

    settings = TuneSettings(max_accuracy_drop=max_accuracy_drop, objective=objective,
                            time_budget_min=time_budget, max_trials=max_trials,
                            strategies=strategies, max_slowdown=_slowdown(max_slowdown))
    settings.validate()
    pool = _executor(executor, jobs, address)
    console = _stderr_console()
    start = time.monotonic()

    def progress(done: int, running: int, best: str, left: float) -> None:
        console.print(f"[{time.monotonic() - start:7.1f}s] {done} trials ({running} running), "
                      f"{left / 60:.1f} min left; best: {best}", highlight=False, markup=False)

    try:
        with pool:  # its workers live from the first batch to the final measurement
            result = search(settings, pool, out=out, seeds=seeds, progress=progress, **data)
    except NothingMeetsBudget as answer:
        click.echo(f"compress: {answer}", err=True)
        sys.exit(1)
    except TuneInterrupted as stop:
        click.echo(f"compress: {stop}", err=True)
        sys.exit(130)
    summary = result.summary
    test = summary.get("test") or {}
    click.echo(f"chosen: {summary['chosen_label']}  (`{summary['chosen_spec']}`)")
    if test:
        click.echo(f"test split, {test['seeds']} seed(s): accuracy {test['accuracy']:.4f} against the "
                   f"teacher's {test['teacher_accuracy']:.4f} ({0.0 - test['drop_pp']:+.2f} pp), "
                   f"{test['times_smaller_gzip']:.1f}x smaller (gzip), "
                   f"{test['speedup'] or float('nan'):.2f}x faster")
    _finish(result.out, result.rows)


@cli.command(name="sweep")
@click.argument("config", type=click.Path(path_type=Path))
@_executor_options
@click.option("--time", "timing", type=click.Choice(["all", "best"]), default="all", show_default=True,
              help="Which rows to time after the parallel phase: all, or each seed's Pareto front.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Sweep folder; re-running into it reuses every finished job. "
              "Default: reports/sweep-<config name>.")
def sweep_command(config: Path, executor: str, jobs: int | None, address: str | None, timing: str,
                  out: Path | None) -> None:
    """Run a grid of configurations × seeds in parallel, resumably, then report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from compress.orchestrate.sweep import SweepInterrupted, load_sweep, sweep

    pool = _executor(executor, jobs, address)
    settings = load_sweep(config)
    folder = out or Path("reports") / f"sweep-{config.stem}"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}"), TimeRemainingColumn())
    console = _stderr_console()
    start = time.monotonic()
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("preparing jobs", total=None, failed=0)

        def progress(done: int, total: int, failed: int, what: str) -> None:
            bar.update(task, completed=done, total=total, failed=failed, description=what)
            if not console.is_terminal:
                console.print(f"[{time.monotonic() - start:7.1f}s] {done}/{total} ({failed} failed) "
                              f"{what}", highlight=False, markup=False)

        try:
            with pool:
                result = sweep(settings, folder, pool, timing=timing, progress=progress)
        except SweepInterrupted as stop:
            click.echo(f"compress: {stop}; pending jobs were cancelled and the report there is "
                       "marked incomplete; re-run the same command to resume", err=True)
            sys.exit(130)
    click.echo(f"{len(result.rows)} jobs, {result.reused} reused, {result.failed} failed")
    _finish(folder, result.rows)
    if result.failed:
        sys.exit(1)


def main() -> None:
    cli()
