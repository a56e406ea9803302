"""The compact table and recommendation a run or sweep prints when it ends."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from compress.analysis.configurations import Row, configurations
from compress.analysis.devices import Device
from compress.analysis.recommend import (
    DEFAULT_MAX_DROP_PP,
    NothingQualifies,
    default_choices,
    objective_value,
)


def summary(rows: list[Row], device: Device | None = None) -> Any:
    """One line per configuration (means over seeds) and the default-budget recommendation
    (among the configurations that fit ``device``)."""
    table = Table(title="compress: one row per configuration (means over seeds)", title_justify="left")
    for column in ("method", "role", "size KiB", "× smaller", "latency µs", "accuracy", "Δ pp"):
        table.add_column(column, justify="left" if column in ("method", "role") else "right")
    for config in configurations(rows):
        latency = f"{config.latency[0]:.2f}" if config.latency else "—"
        delta = "—" if config.role == "baseline" else f"{config.delta_pp:+.1f}"
        partial = "" if config.whole else f" ({config.seeds_text})"
        table.add_row(config.label + partial, config.role, f"{config.size_bytes / 1024:.1f}",
                      f"{config.size_factor:.2f}", latency, f"{config.accuracy[0]:.3f}", delta)
    lines = []
    for objective, choice in default_choices(rows, device).items():
        if isinstance(choice, NothingQualifies):
            lines.append(f"{objective}: {choice}")
            continue
        lines.append(f"{'smallest' if objective == 'size' else 'fastest'} within "
                     f"{DEFAULT_MAX_DROP_PP:g} pp: {choice.best.label} "
                     f"({objective_value(choice.best, objective)})")
    return Group(table, *lines)
