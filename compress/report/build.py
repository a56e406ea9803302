"""Reports from saved results only: never imports TensorFlow, so they rebuild anywhere.

``build_report`` reads one or more runs' ``results.jsonl`` (and each run's
``run.json`` when present) and writes ``report.md``, a self-contained
``report.html``, ``claims.csv`` and the figures they show.  Every pairing and
selection goes through ``compress.analysis`` by role; every verdict through
``compress.analysis.verdicts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path

from compress.analysis.claims import evaluate_claims, load_claims
from compress.analysis.configurations import (
    DOCUMENT_STUDENT_ACCURACY,
    Config,
    Pairing,
    Row,
    configurations,
    frontier,
    group_key,
    pairings,
)
from compress.analysis.devices import parse_device
from compress.analysis.verdicts import Verdict
from compress.common.certify import CONFIDENCE
from compress.common.errors import UserError, flag_names, option
from compress.common.fileio import write_atomic
from compress.common.stats import mean_interval
from compress.report import plots
from compress.report.document import Block, Bullets, Details, Document, Heading, Image, Paragraph, Table
from compress.report.sections import (
    controls_section,
    device_section,
    findings,
    recommendation_section,
    resolution,
    tune_section,
)
from compress.report.tables import (
    CLAIMS_FILE,
    KIB,
    best_per_family,
    claims_csv,
    claims_table,
    common_table,
    micro_section,
    seeds_details,
    unfinished_lines,
)
from compress.results.manifest import RunManifest
from compress.results.outdir import check_output, folder_kind, open_output
from compress.results.rows import (
    RESULTS_FILE,
    TUNE_FILE,
    comparable_group,
    mixed,
    read_runs,
    require_one_group,
    to_csv,
)
from compress.results.tune_record import TuneRecord

FORMATS = ("md", "html", "csv")
FIGURES = {
    "size": ("accuracy_vs_size.png", "Accuracy against size, with the frontier of significant gains"),
    "latency": ("accuracy_vs_latency.png", "Accuracy against latency, with the frontier of "
                "significant gains"),
    "students": ("teacher_vs_student.png", "Teacher, its controls and the technique"),
    "bars": ("size_and_latency.png", "Size and latency per configuration"),
}


def _timing_span(seconds: float | None) -> str:
    """How long each model was timed, when the run recorded it (older runs did not)."""
    if seconds is None:
        return ""
    if seconds == 0:
        return ("; timed with COMPRESS_LATENCY_SPAN=0, its rounds only: a second of slowed core "
                "can skew a latency")
    return f"; each model timed over at least {seconds:g} s"


def _header(rows: list[Row], manifests: list[RunManifest], configs: list[Config]) -> list[str]:
    first = rows[0]
    env = first.get("env") or {}
    seeds = sorted({r["seed"] for r in rows})
    teachers = {group_key(r): r for r in rows if r.get("role") == "baseline"}
    accuracy = "; ".join(
        f"seed {r['seed']}: test {r['accuracy']:.3f} against {r['majority_rate']:.3f} for always "
        f"predicting the majority class (validation {r['teacher_val_accuracy']:.3f})"
        for r in teachers.values() if r.get("accuracy") is not None and r.get("majority_rate") is not None
    )
    n, detectable = resolution(configs)
    items = [
        f"**Dataset:** {', '.join(sorted({str(r['dataset']) for r in rows}))}; "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}",
        f"**Test split:** {n:,} samples per seed; one seed detects accuracy differences of about "
        f"{detectable:.1f} pp (80% power, α = 0.05, at this run's typical disagreement rate); "
        "pooling seeds narrows that." if n else "**Test split:** no row finished, so nothing was scored.",
        f"**Teacher:** `{first['teacher_architecture']}`, "
        + ("your model" if str(first["teacher_architecture"]).startswith("user:")
           else "from the cache" if first.get("teacher_cached") else "trained in this run")
        + (f" ({accuracy})" if accuracy else ""),
        f"**Machine:** {env.get('cpu')}, {env.get('cores')} cores; inference threads "
        f"{env.get('inference_threads')}{_timing_span(env.get('latency_span_seconds'))}; "
        f"Python {env.get('python')}",
        "**Versions:** " + ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v),
    ]
    if first.get("preprocessing"):
        items.insert(1, f"**Your data:** {first['preprocessing']}")
    if first.get("class_names"):
        items.insert(1, f"**Classes:** {', '.join(map(str, first['class_names']))}")
    if any(r.get("scenario") == "shift" for r in rows):
        items.insert(1, "**Scenario:** shift: the teacher learned a source domain only; every row is "
                     "scored on the shifted target, so the baseline row is the teacher zero-shot.")
    for manifest in manifests:
        command = manifest.config.get("command")
        if command and f"**Command:** `{command}`" not in items:  # a copied run says it once
            items.append(f"**Command:** `{command}`")
        for seed, why in (manifest.weak_teacher or {}).items():
            items.insert(0, f"**Weak teacher (seed {seed}, allowed by --allow-weak-teacher):** {why}.")
        evidence = (manifest.dataset or {}).get("n_evidence")
        if evidence and not any(item.startswith("**Budget evidence:**") for item in items):
            items.append(f"**Budget evidence:** {evidence:,} training rows per seed set aside, trained on by "
                         f"nothing, to certify every max_drop answer ({CONFIDENCE:.0%} confidence, "
                         "docs/verdicts.md); the teacher and every row trained on the rest.")
        budget = manifest.config.get("time_budget")
        if budget:
            cut = {seed: t["budget_stopped"] for seed, t in manifest.teachers.items()
                   if t.get("budget_stopped")}
            teacher = "; ".join(f"the teacher (seed {seed}) stopped after {what}, so it was not "
                                "cached" for seed, what in cut.items())
            items.insert(0, f"**Time budget:** {budget:g} min for all training, shared by cost"
                         + (f"; {teacher}" if teacher else "") + ".")
        if not manifest.complete:
            items.insert(0, f"**Run {manifest.run_id} is incomplete:** it stopped early; "
                         "its unfinished rows are missing and rows without latency were not timed.")
    return items


def _points(configs: list[Config]) -> list[plots.Point]:
    points = []
    for c in configs:
        mean, low, high = c.accuracy
        latency = c.latency or (None, None, None)
        points.append(plots.Point(
            label=c.label, family=c.family, role=c.role, seeds=c.seeds, accuracy=mean,
            accuracy_low=low, accuracy_high=high, size_kib=c.size_bytes / KIB,
            gzip_kib=c.gzip_bytes / KIB, latency_us=latency[0], latency_low=latency[1],
            latency_high=latency[2],
            arena_kib=None if c.arena_bytes is None else c.arena_bytes / KIB,
            rss_kib=None if c.model_rss_bytes is None else c.model_rss_bytes / KIB))
    return points


def _figures(configs: list[Config], found: list[Pairing], folder: Path, prefix: str = "") -> list[Block]:
    """The figures, drawn into ``folder`` with ``prefix`` before each file name (one per group of
    a mixed report)."""
    if not configs:
        return []
    files = {name: folder / f"{prefix}{file}" for name, (file, _) in FIGURES.items()}
    points = _points(configs)
    figures = [partial(plots.accuracy_tradeoff, points, files[cost], cost=cost,
                       front=[c.label for c in frontier(configs, cost)]) for cost in ("size", "latency")]
    figures.append(partial(plots.size_and_latency_bars, points, files["bars"]))
    shown = ["size", "latency", "bars"]
    if found:
        pairing = found[0]
        technique = [p.control for p in found if p.technique is pairing.technique]
        teacher = [i.base["accuracy"] for i in pairing.technique.items]
        bars = [("Teacher", *mean_interval(teacher))]
        bars += [(c.label, *c.accuracy) for c in technique] + [(pairing.technique.label,
                                                                 *pairing.technique.accuracy)]
        document = pairing.technique.row.get("dataset") == "document"
        figures.append(partial(
            plots.teacher_vs_student, bars, files["students"], seeds=pairing.technique.seeds,
            reference=("document's student (0.78, one unseeded run)", DOCUMENT_STUDENT_ACCURACY)
            if document else None))
        shown.insert(2, "students")
    plots.draw_all(figures)  # the costliest first, as drawn side by side
    return [Heading("Figures"), *[Image(files[f], FIGURES[f][1]) for f in shown]]


def _notes(row: Row) -> str:
    """What the strategy says it did, then what the measurement read in its file."""
    stored = f"In the file: {row['stored_as']}" if row.get("stored_as") else ""
    return " ".join(part for part in (row.get("notes") or "", stored) if part)


def build_document(rows: list[Row], manifests: list[RunManifest], folder: Path,
                   tunes: Sequence[TuneRecord] = (), figure_prefix: str = "",
                   ) -> tuple[Document, list[Verdict]]:
    """Assemble the report (writing its figures into ``folder``) and its claim verdicts;
    ``tunes`` are the tune records of tune folders among the results."""
    datasets = sorted({str(r.get("dataset")) for r in rows})
    configs = configurations(rows)
    found = pairings(configs)
    failed = [r for r in rows if r["status"] != "ok"]
    document = Document(f"Compression report: {', '.join(datasets)}")
    document.add(Bullets(_header(rows, manifests, configs)))
    if not any(c.role == "baseline" for c in configs):
        document.add(Paragraph("**No baseline row finished, so nothing can be compared.**"))
    device = next((parse_device(m.config.get("device")) for m in manifests if m.config.get("device")), None)
    document.add(*recommendation_section(rows, device))
    for tune in tunes:
        document.add(*tune_section(tune))
    document.add(
        Heading("Common table"),
        Paragraph("Every model, the teacher included, is scored as a TFLite flatbuffer in the "
                  "LiteRT interpreter: batch-1 latency over interleaved rounds with a paired "
                  "speed-up against the teacher; accuracy on the held-out test split. One row per "
                  "configuration; per-seed rows below."),
        common_table(configs),
        *([Paragraph("Skipped or failed, not in the table above:"), Bullets(unfinished_lines(failed))]
          if failed else []),
        Details("Full specs, to re-run any row", [Bullets(
            [f"**{c.label}**: `{c.spec}`" + (f" (controls `{c.control_of}`)" if c.control_of else "")
             for c in configs])]),
        seeds_details(rows),
    )
    document.add(*micro_section(configs))
    if device is not None:
        document.add(*device_section(configs, device))
    best = best_per_family(configs)
    if best:
        document.add(Heading("Best configuration per family"),
                     Paragraph("Highest mean accuracy over seeds; ties go to the smaller gzip size."),
                     Table(best))
    document.add(Heading("What this run shows"), Bullets(findings(configs, rows) or
                                                        ["Nothing unusual: see the tables."]))
    document.add(*controls_section(found))
    verdicts = evaluate_claims(configs, found, failed)
    techniques = load_claims()["techniques"]
    document.add(
        Heading("The document's comparison, tested"),
        Paragraph("The source document's table, technique by technique:"),
        Table([{k: v for k, v in t.items() if k != "family"} for t in techniques]),
        Paragraph("Each measurable claim against this run's measurements (controls excluded):"),
        claims_table(verdicts),
    )
    document.add(*_figures(configs, found, folder, figure_prefix))
    notes = {(c.label, text): c for c in configs if (text := _notes(c.row))}
    document.add(Heading("Notes per configuration"),
                 Bullets([f"**{label}**: {text}" for label, text in notes] or ["(none)"]))
    return document, verdicts


def mixed_document(rows: list[Row], manifests: list[RunManifest], folder: Path,
                   tunes: Sequence[TuneRecord] = ()) -> tuple[Document, list[Verdict]]:
    """A report of runs that differ in dataset or teacher (``--allow-mixed``): each group is
    reported on its own, under its heading, so no accuracy, ranking, recommendation or claim
    ever mixes two datasets; the claims' technique names say their group."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault(comparable_group(row), []).append(row)
    datasets = [d for d, _ in groups]
    document = Document(f"Compression report: {', '.join(sorted(set(datasets)))}")
    document.add(Paragraph(f"These runs differ in dataset or teacher ({'; '.join(mixed(rows))}). Each "
                           "group is reported on its own below: no number, ranking or recommendation "
                           "compares models of two groups."))
    for tune in tunes:
        document.add(*tune_section(tune))
    verdicts: list[Verdict] = []
    for number, ((dataset, teacher), group) in enumerate(sorted(groups.items()), start=1):
        runs = {r.get("run_id") for r in group}
        part, found = build_document(group, [m for m in manifests if m.run_id in runs], folder,
                                     figure_prefix=f"{number}-")
        document.add(Heading(f"{number}. {dataset}, teacher {teacher}"),
                     *(replace(b, level=b.level + 1) if isinstance(b, Heading) else b for b in part.blocks))
        group_name = dataset if datasets.count(dataset) == 1 else f"{dataset}, teacher {teacher}"
        verdicts += [replace(v, technique=f"{v.technique} ({group_name})") for v in found]
    return document, verdicts


def report_formats(formats: str | Iterable[str]) -> list[str]:
    """``"md, html"`` (as ``--format`` takes them) or a list, as a list of format names."""
    given = formats.split(",") if isinstance(formats, str) else formats
    return [name.strip() for name in given if name.strip()]


def build_report(
    results: Path | str | Sequence[Path | str],
    out: Path | str | None = None,
    formats: str | Iterable[str] = ("md", "html"),
    *,
    allow_mixed: bool = False,
) -> Path:
    """Write the report for one or more runs' results; return the folder written to.

    ``results`` are results.jsonl files or run folders; several are merged.  ``out``
    defaults to the run's own folder for one run, and to a new reports/merged-<time>
    folder for several; any other folder must be new, empty or an earlier report.
    """
    paths = [Path(p) for p in ([results] if isinstance(results, (str, Path)) else results)]
    paths = [p / RESULTS_FILE if p.is_dir() else p for p in paths]
    formats = report_formats(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UserError(f"unknown report format {', '.join(unknown) or '(none)'}; "
                        f"choose from {', '.join(FORMATS)}")
    rows = read_runs(paths)
    if not allow_mixed:  # runs of different datasets or teachers cannot be averaged into one number
        mixing = option("allow_mixed", True)
        require_one_group(rows, f"report them separately, or pass {mixing} to group them by dataset")
    manifests = [m for p in paths if (m := RunManifest.read(p.parent)) is not None]
    tunes = [TuneRecord.read(p.parent) for p in paths if (p.parent / TUNE_FILE).exists()]
    own = {p.parent.resolve() for p in paths}
    if out is None:
        folder = paths[0].parent if len(paths) == 1 else \
            Path("reports") / f"merged-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    else:
        folder = Path(out)
    if folder.resolve() in own and len(own) == 1 and folder_kind(folder) in ("run", "sweep", "tune"):
        check_output(folder, str(folder_kind(folder)), reuse=True)
    else:
        open_output(folder, "report", reuse=True)
    with flag_names():  # a report names the commands' options, whoever builds it
        document, verdicts = (mixed_document if mixed(rows) else build_document)(
            rows, manifests, folder, tunes)
    write_atomic(folder / CLAIMS_FILE, claims_csv(verdicts))
    if "md" in formats:
        write_atomic(folder / "report.md", document.markdown())
    if "html" in formats:
        write_atomic(folder / "report.html", document.html())
    if "csv" in formats:
        write_atomic(folder / "report.csv", to_csv(rows))
    return folder
