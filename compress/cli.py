"""Thin click commands: parse, validate, call the library, print.

Heavy modules are imported inside the commands, so ``compress --help`` and
``compress report`` never load TensorFlow.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from compress import __version__
from compress.errors import UserError

DATASETS = ("synthetic", "digits")


class OneLineErrors(click.Group):
    """Every usage or input error becomes one line on stderr and exit code 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as stop:
            code = stop.exit_code
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
            sys.exit(code)
        return code


def _one_line(message: str) -> str:
    return " ".join(message.split())


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def cli() -> None:
    """Compare model compression techniques on one dataset, one teacher, one measurement."""


@cli.command()
@click.option("--dataset", type=click.Choice(DATASETS), default="synthetic", show_default=True,
              help="Built-in dataset.")
@click.option("--strategy", "strategies", multiple=True, metavar="SPEC",
              help="NAME or NAME:key=value,... (wildcards allowed); repeat for more. "
              "Default: one strategy per technique plus controls.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Fixes data, splits, initialisation and training.")
@click.option("--epochs", type=int, default=20, show_default=True,
              help="Teacher epochs, and the budget of strategies whose epochs are not set.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="LiteRT interpreter threads for accuracy and latency.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder. Default: reports/<dataset>-<timestamp>.")
@click.option("--overwrite", is_flag=True, help="Replace results already in --out.")
def run(dataset: str, strategies: tuple[str, ...], seed: int, epochs: int, threads: int,
        out: Path | None, overwrite: bool) -> None:
    """Compress the teacher with every selected strategy and write a report."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from compress.api import execute
    from compress.runner import DEFAULT_STRATEGIES, RunConfig

    config = RunConfig(
        dataset=dataset, strategies=strategies or DEFAULT_STRATEGIES, seed=seed, epochs=epochs,
        out=out, threads=threads, overwrite=overwrite,
        command=shlex.join(["compress", *sys.argv[1:]]),
    )
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("starting", total=1)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        result = execute(config, progress)
    for row in result.rows:
        if row["status"] != "ok":
            click.echo(f"{row['strategy']}: {row['status']}: {row['reason']}", err=True)
    click.echo(f"report: {result.out / 'report.md'}")
    if result.failed:
        sys.exit(1)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@cli.command(name="list")
def list_strategies() -> None:
    """Show every available strategy with its family and what it does."""
    from compress.strategies import registry

    strategies = registry()
    width = max(len(name) for name in strategies)
    for name, cls in strategies.items():
        click.echo(f"{name:<{width}}  {cls.family:<13} {cls.summary}")


@cli.command()
@click.argument("results", type=click.Path(path_type=Path))
def report(results: Path) -> None:
    """Rebuild report.md and its plot from a run folder or its results.jsonl."""
    from compress.report import build_report

    folder = results.parent if results.is_file() else results
    click.echo(f"report: {build_report(folder)}")


def main() -> None:
    cli()
