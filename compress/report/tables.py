"""The report's tables, built from configurations and verdicts: the common table, seeds,
best per family and the document's claims; and how their numbers are written.
"""

from __future__ import annotations

import csv
import io

from compress.analysis.configurations import (
    Config,
    Row,
    compared,
    config_key,
)
from compress.analysis.verdicts import CSV_COLUMNS, Verdict
from compress.report.document import Block, Bullets, Cell, Details, Heading, Paragraph, Table
from compress.results.rows import (
    CSV_FILE,
)

CLAIMS_FILE = "claims.csv"
KIB = 1024


def kib(value: float) -> str:
    return f"{value / KIB:,.1f}"


def method_cell(config: Config) -> Cell:
    """The short label, with the full spec as a tooltip; a control names what it controls."""
    text = config.label
    if config.role == "control":
        text += " (control)"
    return Cell(text, title=config.spec)


def interval_text(values: tuple[float, float, float], digits: int) -> str:
    mean, low, high = values
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _accuracy_change(config: Config) -> str:
    test = config.against_teacher
    if test is None:
        return "—"
    return f"{test.effect_pp:+.1f} pp (p={test.p():.2g})"


def speed_cell(config: Config) -> str:
    if not config.speedup:
        return "—"
    ratio, low, high = config.speedup
    return f"{ratio:.2f}× [{low:.2f}, {high:.2f}] {config.speed}"


def common_table(configs: list[Config]) -> Table:
    """One row per configuration that finished on some seed, means with 95% intervals over
    the seeds it finished; the rest are listed once below it (``unfinished_lines``)."""
    records: list[dict[str, str | Cell]] = []
    several = len({c.row.get("dataset") for c in configs}) > 1
    for config in configs:
        records.append({
            "Method": method_cell(config),
            **({"Dataset": str(config.row.get("dataset"))} if several else {}),
            "Family": config.family,
            "Seeds": config.seeds_text,
            "Size KiB": kib(config.size_bytes),
            "× smaller": f"{config.size_factor:.2f}×",
            "gzip KiB": kib(config.gzip_bytes),
            "gzip × smaller": f"{config.gzip_factor:.2f}×",
            "Arena KiB": kib(config.arena_bytes) if config.arena_bytes is not None else "—",
            "RSS + KiB": kib(config.model_rss_bytes) if config.model_rss_bytes is not None else "—",
            "Latency p50 µs [95% CI]": interval_text(config.latency, 2) if config.latency else "not timed",
            "Speed-up vs teacher": speed_cell(config),
            "Accuracy [95% CI]": interval_text(config.accuracy, 3),
            "Δ accuracy vs teacher": _accuracy_change(config),
            "Train s": f"{config.train_seconds:.1f}",
        })
    return Table(records, footnotes=[
        "Sizes in KiB (1 KiB = 1024 bytes). Arena: the largest total of tensors alive at once "
        "while the model runs (activations, input, output), what the interpreter's arena must "
        "hold; RSS +: what loading and running the model once adds to a fresh LiteRT process's "
        "peak resident memory (docs/benchmarks.md says how both are measured). Intervals: the "
        "test-split interval (Wilson) and the latency order-statistic interval for one seed; a t "
        "interval over seeds otherwise. Latency is the median per-call wall time at batch 1, "
        "every model timed in the same process in interleaved rounds over at least 3 s, over "
        "the steady rounds: those within 10% of the fastest rounds' level (slower ones met a "
        "busy or slowed core; latency_steady_rounds counts the rest). Each row also records "
        "CPU time per call (latency_cpu_us), and a busy-machine warning when over 20% of its "
        "rounds waited for a core. "
        "Δ accuracy: pooled exact McNemar against the teacher. Hover a method for its full spec."])


def unfinished_lines(failed: list[Row], mark: str = "**") -> list[str]:
    """One line per configuration that skipped or failed on some seed: its seeds and the first
    seed's reason; a control that stopped on the same seeds for its technique's reason (a
    ``max_drop`` ladder with no answer) is named on its technique's line, not repeated.
    ``mark`` sets the name off (Markdown bold; "" on a terminal)."""
    groups: dict[tuple[str, str, str, str | None], list[Row]] = {}
    for row in failed:
        groups.setdefault((str(row["status"]), *config_key(row)), []).append(row)
    lines: dict[tuple[str, str, str, str | None], list[str]] = {}
    for key, mine in groups.items():
        status, dataset, spec, control_of = key
        technique = (status, dataset, str(control_of), None)
        if control_of and technique in groups and _seeds(groups[technique]) == _seeds(mine) and \
                mine[0].get("reason") == groups[technique][0].get("reason"):
            lines.setdefault(technique, []).append(str(mine[0].get("label") or spec))
            continue
        lines.setdefault(key, [])
    return [_unfinished_line(groups[key], controls, mark) for key, controls in lines.items()]


def _unfinished_line(rows: list[Row], controls: list[str], mark: str) -> str:
    first, seeds = rows[0], _seeds(rows)
    plural = "s" if len(controls) > 1 else ""
    also = f" (and its control{plural} {', '.join(controls)})" if controls else ""
    where = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    reason = str(first.get("reason") or "no reason recorded")
    whose = f" (seed {first.get('seed')}'s; every seed's in {CSV_FILE})" if len(seeds) > 1 else ""
    name = f"{mark}{first.get('label') or first['spec']}{mark}"
    return f"{name}{also}: {first['status']} on {where}: {reason}{whose}"


def _seeds(rows: list[Row]) -> list[int]:
    return sorted({int(r.get("seed") or 0) for r in rows})


def seeds_details(rows: list[Row]) -> Details:
    """Every row of every seed, for whoever wants to check the aggregation."""
    records = []
    for item in compared(rows):
        row = item.row
        records.append({
            "Method": Cell(str(row.get("label") or row["spec"]), title=str(row["spec"])),
            "Run": str(row["run_id"]), "Seed": str(row["seed"]),
            "Size KiB": kib(row["size_bytes"]),
            "Latency p50 µs": f"{row['latency_us_p50']:.2f}" if row.get("latency_us_p50") else "—",
            "Accuracy": f"{row['accuracy']:.3f}",
            "Δ pp": "—" if row is item.base else f"{item.delta_pp:+.1f}",
        })
    return Details(f"Per-seed rows ({len(records)}; also in {CSV_FILE})", [Table(records)])


def best_per_family(configs: list[Config]) -> list[dict[str, str | Cell]]:
    """For each technique with several configurations: the most accurate, then the smallest."""
    records: list[dict[str, str | Cell]] = []
    families = dict.fromkeys(c.family for c in configs if c.role == "technique")
    for family in families:
        group = [c for c in configs if c.family == family and c.role == "technique"]
        if len(group) < 2:
            continue
        best = max(group, key=lambda c: (round(c.accuracy[0], 6), c.gzip_factor))
        records.append({"Family": family, "Best configuration": method_cell(best),
                        "Accuracy": f"{best.accuracy[0]:.3f}",
                        "gzip × smaller": f"{best.gzip_factor:.2f}×",
                        "Of": f"{len(group)} configurations"})
    return records


def signed_pp(value: float) -> str:
    """Signed percentage points, without a minus sign on zero."""
    return f"{value + 0.0:+.2f}" if round(value, 2) != 0 else "0.00"


def signed_pp_or_blank(loss: float | None) -> str:
    """A loss in points as a signed change, blank when there is none (a failed seed)."""
    return "" if loss is None else signed_pp(-loss)


def _verdict_cell(verdict: Verdict) -> str:
    text = f"**{verdict.verdict}**"
    if verdict.p_value is not None:
        text += f" (p={verdict.p_value:.2g})"
    if verdict.verdict == "not shown" and verdict.p_value is not None and verdict.p_value <= 0.05:
        text += "; significant, but smaller than the effect that matters"
    if verdict.needed:
        text += f"; {verdict.needed}"
    return text


def claims_table(verdicts: list[Verdict]) -> Table:
    records: list[dict[str, str | Cell]] = [{
        "Technique": v.technique,
        "Document says": v.claim,
        "Measured here": v.measured,
        "Verdict": _verdict_cell(v),
        "Decided by": v.rule or "—",
    } for v in verdicts]
    return Table(records, footnotes=[
        "Verdicts follow docs/verdicts.md: p-values are Holm-corrected across this table; "
        "'not shown' means no significant, meaningful effect that this data could have detected; "
        "'inconclusive' means the data is too small to detect the smallest meaningful effect. "
        f"The same numbers are in {CLAIMS_FILE}."])


def claims_csv(verdicts: list[Verdict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for verdict in verdicts:
        writer.writerow(verdict.csv_record())
    return buffer.getvalue()



def micro_section(configs: list[Config]) -> list[Block]:
    """Each configuration in TFLite Micro (``measure.micro``): whether it runs on a
    microcontroller, the arena and flash it needs there, and its accuracy there against
    LiteRT's.  Nothing when no row was measured; one line when TFLite Micro was not at hand."""
    measured = [c for c in configs if any(i.row.get("micro_runs") is not None for i in c.items)]
    if not measured:
        reasons = {i.row.get("micro_reason") for c in configs for i in c.items} - {None}
        return [Heading("On a microcontroller (TFLite Micro)"), Paragraph(f"Not measured: {min(reasons)}.")] \
            if reasons else []
    records: list[dict[str, str | Cell]] = []
    for config in measured:
        runs = all(i.row.get("micro_runs") for i in config.items)
        reason = next((i.row.get("micro_reason") for i in config.items if i.row.get("micro_reason")), "")
        arena = max((i.row["micro_arena_bytes"] for i in config.items if i.row.get("micro_arena_bytes")),
                    default=None)
        records.append({
            "Method": method_cell(config),
            "Runs": "yes" if runs else Cell("no", title=reason),
            "Arena KiB": "—" if arena is None else kib(arena),
            "Flash KiB": kib(config.mean("micro_flash_bytes") or 0),
            "Accuracy there": "—" if config.mean("micro_accuracy") is None else
            f"{config.mean('micro_accuracy'):.3f}",
            "Same prediction as LiteRT": "—" if config.mean("micro_agreement") is None else
            f"{config.mean('micro_agreement'):.1%}",
        })
    missing = [f"**{c.label}**: {reason}" for c in measured
               if (reason := next((i.row.get("micro_reason") for i in c.items if i.row.get("micro_reason")),
                                  None))]
    return [Heading("On a microcontroller (TFLite Micro)"),
            Paragraph("Each model in TFLite Micro's own interpreter (its reference kernels, on this "
                      "machine): the smallest tensor arena it builds and runs in, found to the byte "
                      "(the largest over seeds), the flash its file takes, and its accuracy there on "
                      "the test split with the share of rows predicted as in LiteRT. A board's arena "
                      "differs a little (32-bit pointers, optimized kernels' scratch buffers)."),
            Table(records), *([Bullets(missing)] if missing else [])]
