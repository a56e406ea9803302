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
from compress.common.text import one_line
from compress.data.options import MISSING_POLICIES

DATASETS = ("synthetic", "document", "digits", "negation", "order")


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
            click.echo(f"compress: error: {one_line(error.format_message())}", err=True)
            code = error.exit_code
        except UserError as error:
            click.echo(f"compress: error: {one_line(str(error))}", err=True)
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


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def cli() -> None:
    """Compare model compression techniques on one dataset, one teacher, one measurement."""


def _options(*options: Any) -> Any:
    """A decorator adding ``options`` to a command, in the order given."""
    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


#: The data and teacher options of run, sensitivity and tune: declared once, so a new data
#: option lands in every command.  A sweep file takes the same settings as keys.
_data_options = _options(
    click.option("--dataset", type=click.Choice(DATASETS), default=None,
                 help="Built-in dataset: synthetic (the document's generator, 2,000 rows, a 1,000-row "
                 "test split), document (its exact 1,000 rows), digits (8x8 images), or negation and order "
                 "(generated texts only word order solves: 4,000 token-id rows).  "
                 "[default: synthetic]"),
    click.option("--data", type=click.Path(path_type=Path), default=None,
                 help="Your own .csv, .tsv, .parquet or .npz (arrays x, y[, x_test, y_test]) instead, or "
                 "an image folder with one sub-folder per class (PNG/JPEG/BMP/GIF; train/ with test/ or "
                 "val/ sub-folders keep a given test split)."),
    click.option("--image-size", default=None, metavar="H,W",
                 help="Resize an image folder's images to H,W.  [default: their most common size]"),
    click.option("--target", default=None, help="The label column of a .csv or .parquet --data file."),
    click.option("--tokens", is_flag=True, default=None,
                 help="An .npz's integer x holds token ids (texts), not numbers; implied when --teacher "
                 "takes token ids."),
    click.option("--text-column", default=None, metavar="NAME",
                 help="A table's free-text column, tokenized on the train split.  [default: detected]"),
    click.option("--vocabulary", type=int, default=None, metavar="N",
                 help="Words the tokenizer keeps (padding and unknown included).  [default: from the "
                 "train split's word counts]"),
    click.option("--sequence-length", type=int, default=None, metavar="N",
                 help="Tokens per text: longer ones cut, shorter padded.  [default: the train split's "
                 "95th percentile]"),
    click.option("--missing", type=click.Choice(MISSING_POLICIES), default=None,
                 help="Missing cells: stop, drop their rows, or impute (median / most frequent, "
                 "fitted on the train split). Counts are always reported.  [default: error]"),
    click.option("--teacher", type=click.Path(path_type=Path), default=None,
                 help="Your trained Keras classifier as the teacher: a .keras file (Keras 3 or tf_keras) "
                 "or a SavedModel folder."),
    click.option("--teacher-arch", "teacher_architecture", default=None, metavar="SPEC",
                 help="The built-in teacher to train: mlp:128,64 (any data), cnn:32,64:128 (images), "
                 "cnn1d:32,64,64:64 (sequences), dsres:16,32 (depthwise-separable residual, images), "
                 "MLPerf Tiny's resnet8, dscnn and mobilenetv1-0.25 (images), or textcnn:64:128, "
                 "bilstm:64:64 and transformer:2,4,64 (texts). "
                 "Default: by the data's kind."),
    click.option("--trust-model", is_flag=True,
                 help="Allow .h5, pickles and Lambda/custom layers in --teacher (they can run code)."),
    click.option("--allow-weak-teacher", is_flag=True,
                 help="Go on when the teacher is not clearly better than predicting the majority class."),
)

#: Where the rows train, for run, sweep and tune alike.
_executor_options = _options(
    click.option("--jobs", type=int, default=None,
                 help="Worker processes that train strategies side by side (rows are identical for "
                 "any count; latency is timed afterwards, alone). 1: all in this process.  "
                 "[default: $COMPRESS_JOBS, else the core count]"),
    click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
                 help="local: this process or a process pool on this machine; dask: dask.distributed "
                 "(pip install 'compress[dask]').  [default: local]"),
    click.option("--address", default=None, help="Dask scheduler (or set DASK_SCHEDULER_ADDRESS); "
                 "without one a LocalCluster is started."),
)

#: --device of run, sweep, tune and recommend: where the model ships (compress.analysis.devices).
_device_option = click.option(
    "--device", default=None, metavar="NAME|mcu:ram=SIZE,flash=SIZE[,int8=yes]",
    help="Where the model ships: phone, server, nrf52840 (256 KiB RAM, 1 MiB flash), rp2040, stm32h7, "
    "esp32-s3, or mcu:ram=256k,flash=1m,int8=yes (k: KiB, m: MiB); a microcontroller keeps 25% of "
    "each for the runtime and the application. Only rows that fit are recommended.")

#: --evidence-rows of run and sweep: the rows that certify budget answers (compress.common.certify).
_evidence_option = click.option(
    "--evidence-rows", type=int, default=None, metavar="N",
    help="Training rows set aside, never trained on, to certify every max_drop answer; 0: none (the "
    "answers are then not certified).  [default: as many as the tightest max_drop needs, at most 40% "
    "of the training rows; none when no strategy asks a budget]")

#: --time-budget of run and sweep: the clock cuts training.  tune's --time-budget is another
#: thing (minutes of search, each trial a fixed number of steps): docs/tune.md.
_training_time_option = click.option(
    "--time-budget", type=float, default=None, metavar="MIN",
    help="Minutes for all training (the teachers' included; timing and the report come after): "
    "each strategy gets a share by its cost, stops when it is spent, and its row says so; such a "
    "row is never reused by --resume.  [default: no limit]")


@cli.command()
@_data_options
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
@_executor_options
@_training_time_option
@_device_option
@_evidence_option
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder: new, empty, an earlier run with --overwrite, or one to finish or "
              "extend with --resume. Default: reports/<dataset>-<timestamp>.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (swapped in at the end).")
@click.option("--micro/--no-micro", default=True, show_default=True,
              help="Measure every model in TFLite Micro too: whether it runs there (the missing op "
              "named), its exact tensor arena, its flash and its accuracy there.")
@click.option("--resume", is_flag=True,
              help="Keep the rows --out already holds of the same data and teachers, make only the "
              "rest (after an interruption, or with strategies added), and time them all together.")
def run(strategies: tuple[str, ...], seed: int | None, n_seeds: int | None, **options: Any) -> None:
    """Compress the teacher with every selected strategy and write a report."""
    if seed is not None and n_seeds is not None:
        raise UserError("give --seed or --seeds, not both")
    from compress.api import execute
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.run import RunInterrupted

    config = resolve_config(strategies=strategies, seeds=n_seeds if seed is None else [seed], **options,
                            command=shlex.join(["compress", *sys.argv[1:]]))
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
    """The end of run and sweep: problems, a compact summary, the recommendation (for the
    folder's device), the reports."""
    from compress.analysis.devices import parse_device
    from compress.report.summary import summary
    from compress.report.tables import unfinished_lines
    from compress.results.manifest import RunManifest

    for line in unfinished_lines([row for row in rows if row["status"] != "ok"], mark=""):
        click.echo(line, err=True)
    manifest = RunManifest.read(folder)
    device = parse_device(manifest.config.get("device")) if manifest is not None else None
    _console().print(summary(rows, device))
    click.echo(f"report: {folder / 'report.md'}")
    click.echo(f"html:   {folder / 'report.html'}")
    named = f" --device {shlex.quote(manifest.config['device'])}" if device is not None else ""
    click.echo(f"next:   compress recommend {folder} --max-accuracy-drop 1 --objective latency{named}")


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
@_device_option
def recommend(results: tuple[Path, ...], max_size_kib: float | None, max_latency_us: float | None,
              max_accuracy_drop: float | None, objective: str, device: str | None) -> None:
    """Pick the best method for your constraints from saved results (controls never qualify)."""
    from compress.analysis.recommend import DEFAULT_MAX_DROP_PP, NothingQualifies
    from compress.analysis.recommend import recommend as pick
    from compress.results.manifest import unfinished_runs
    from compress.results.rows import read_runs

    for folder in unfinished_runs(results):
        click.echo(f"warning: {folder} stopped early: the strategies it did not finish are not "
                   "among the candidates", err=True)
    if max_accuracy_drop is None:  # as the report chooses: a model that lost 60 points is no answer
        max_accuracy_drop = DEFAULT_MAX_DROP_PP

    rows = read_runs(results)
    try:
        choice = pick(rows, max_size_kib=max_size_kib, max_latency_us=max_latency_us,
                      max_accuracy_drop=max_accuracy_drop, objective=objective, device=device)
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


def _executor(executor: str | None, jobs: int | None, address: str | None) -> Any:
    """The executor tune keeps from its first batch to its final measurement, its options
    checked by the run settings' resolver."""
    from compress.orchestrate.config import resolve_config
    from compress.orchestrate.executors import executor_for

    config = resolve_config(jobs=jobs, executor=executor, address=address)
    return executor_for(config, [], config.jobs)


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
              "many trials run (tune.json records it, and --trials N repeats the same search). Unlike "
              "run's and sweep's --time-budget, the clock never cuts a trial's training: each trains a "
              "fixed number of steps, so the same command gives the same answer on any machine.")
@click.option("--trials", "max_trials", type=int, default=None,
              help="Stop after this many trials (else the time budget decides).")
@click.option("--strategy", "strategies", multiple=True, metavar="PATTERN",
              help="Only these strategies (wildcards allowed) as stages; repeat for more. "
              "Default: every tunable strategy.")
@click.option("--seeds", type=int, default=3, show_default=True,
              help="Seeds the chosen configuration and the front are measured on, on the test split.")
@_device_option
@_executor_options
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Tune folder; re-running into it replays every finished trial. "
              "Default: reports/tune-<data>.")
def tune(max_accuracy_drop: float, objective: str, max_slowdown: str, time_budget: float,
         max_trials: int | None, strategies: tuple[str, ...], seeds: int, device: str | None,
         executor: str | None, jobs: int | None, address: str | None, out: Path | None,
         **data: Any) -> None:
    """Search every strategy and chain for the smallest (or fastest) model within an accuracy
    budget: trials on the validation split, the choice measured on the test split."""
    from compress.orchestrate.tune import NothingMeetsBudget, TuneInterrupted
    from compress.orchestrate.tune import tune as search
    from compress.orchestrate.tune_space import TuneSettings

    settings = TuneSettings(max_accuracy_drop=max_accuracy_drop, objective=objective,
                            time_budget_min=time_budget, max_trials=max_trials,
                            strategies=strategies, max_slowdown=_slowdown(max_slowdown),
                            device=device)
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
@_training_time_option
@_device_option
@click.option("--time", "timing", type=click.Choice(["all", "best"]), default="all", show_default=True,
              help="Which rows to time after the parallel phase: all, or each seed's Pareto front.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Sweep folder; re-running into it reuses every finished row. "
              "Default: reports/sweep-<config name>.")
def sweep_command(config: Path, executor: str | None, jobs: int | None, address: str | None,
                  time_budget: float | None, device: str | None, timing: str, out: Path | None) -> None:
    """Run a grid of configurations × seeds in parallel, resumably, then report."""
    from compress.orchestrate.sweep import SweepInterrupted, load_sweep, sweep

    settings = load_sweep(config)
    folder = out or Path("reports") / f"sweep-{config.stem}"
    with _progress() as progress:
        try:
            result = sweep(settings, folder, timing=timing, progress=progress, jobs=jobs, executor=executor,
                           address=address, time_budget=time_budget, device=device,
                           command=shlex.join(["compress", *sys.argv[1:]]))
        except SweepInterrupted as stop:
            click.echo(f"compress: {stop}; pending rows were cancelled and the report there is "
                       "marked incomplete; re-run the same command to resume", err=True)
            sys.exit(130)
    click.echo(f"{len(result.rows)} rows, {result.reused} reused, {result.failures} failed")
    _finish(folder, result.rows)
    if result.failed:
        sys.exit(1)


def main() -> None:
    cli()
