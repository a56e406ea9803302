"""Reports from saved results only: never imports TensorFlow, so they rebuild anywhere.

``build_report`` reads one or more ``results.jsonl`` files (and each run's
``run.json`` when present) and writes ``report.md``, a self-contained
``report.html`` and the figures they show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from compress import plots
from compress.analysis import (
    DOCUMENT_DISTILL_PARAMS,
    DOCUMENT_STUDENT_ACCURACY,
    MIN_GAP_PP,
    Compared,
    GapClosure,
    Row,
    accuracy_verdict,
    by_spec,
    compared,
    gap_closures,
    group_key,
    label,
    mean_std,
    speed_verdict,
)
from compress.claims import evaluate_claims, load_claims
from compress.document import Block, Bullets, Document, Heading, Image, Paragraph, Table
from compress.errors import UserError
from compress.fileio import write_atomic
from compress.results import RESULTS_FILE, read_results, to_csv

FORMATS = ("md", "html", "csv")
FIGURES = {
    "size": ("accuracy_vs_size.png", "Accuracy against size, with the Pareto frontier"),
    "latency": ("accuracy_vs_latency.png", "Accuracy against latency, with the Pareto frontier"),
    "students": ("teacher_vs_student.png", "Teacher, scratch student and distilled student"),
    "bars": ("size_and_latency.png", "Size and latency per strategy"),
}


def _kb(value: float) -> str:
    return f"{value / 1024:,.1f}"


def _bold_best(records: list[dict[str, str]], rows: list[Row], column: str, key: str,
               *, highest: bool) -> None:
    """Bold the best value of a column among finished rows."""
    values = [(row[key], record) for row, record in zip(rows, records, strict=True)
              if row["status"] == "ok" and row.get(key) is not None]
    if len(values) < 2:
        return
    best = max(v for v, _ in values) if highest else min(v for v, _ in values)
    for value, record in values:
        if value == best and record.get(column):
            record[column] = f"**{record[column]}**"


def common_table(rows: list[Row]) -> list[dict[str, str]]:
    """One display row per result, each compared with the teacher of its own run and seed."""
    against = {id(item.row): item for item in compared(rows)}
    show_seed = len({group_key(r) for r in rows}) > 1
    records = []
    for row in rows:
        record = {"Method": label(row, rows) + (" (control)" if row.get("control") else "")}
        if show_seed:
            record["Seed"] = str(row["seed"])
        record["Family"] = row["family"]
        item = against.get(id(row))
        if row["status"] != "ok" or item is None:
            record["Status"] = f"{row['status']}: {row.get('reason') or 'no baseline to compare'}"
            records.append(record)
            continue
        is_base = row is item.base
        latency = row.get("latency_us_p50")
        record.update({
            "Status": "ok",
            "Size KB": _kb(row["size_bytes"]),
            "× smaller": f"{item.size_factor:.2f}×",
            "gzip KB": _kb(row["size_gzip_bytes"]),
            "gzip × smaller": f"{item.gzip_factor:.2f}×",
            "Params (non-zero)": f"{row['params_count']:,} ({row['nonzero_params']:,})",
            "Latency p50 µs [95% CI]": "not timed" if latency is None else (
                f"{latency:.2f} [{row['latency_us_p50_ci_low']:.2f}, "
                f"{row['latency_us_p50_ci_high']:.2f}]"),
            "Speed-up vs teacher": "—" if is_base or row.get("speedup") is None else (
                f"{row['speedup']:.2f}× [{row['speedup_ci_low']:.2f}, "
                f"{row['speedup_ci_high']:.2f}] {speed_verdict(row)}"),
            "Accuracy [95% CI]": f"{row['accuracy']:.3f} [{row['accuracy_ci_low']:.3f}, "
            f"{row['accuracy_ci_high']:.3f}]",
            "Δ accuracy vs teacher": "—" if is_base else
            f"{item.delta_pp:+.1f} pp, {accuracy_verdict(item)}",
            "Train s": f"{row['train_seconds']:.1f}" if row.get("train_seconds") is not None else "",
        })
        records.append(record)
    _bold_best(records, rows, "Size KB", "size_bytes", highest=False)
    _bold_best(records, rows, "gzip KB", "size_gzip_bytes", highest=False)
    _bold_best(records, rows, "Latency p50 µs [95% CI]", "latency_us_p50", highest=False)
    _bold_best(records, rows, "Accuracy [95% CI]", "accuracy", highest=True)
    return records


def seeds_table(items: list[Compared]) -> list[dict[str, str]]:
    """Mean ± std over seeds per configuration, with the per-seed values beside them."""
    records = []
    for group in by_spec(items).values():
        accuracy = [i.row["accuracy"] for i in group]
        deltas = [i.delta_pp for i in group]
        latency = [i.row["latency_us_p50"] for i in group if i.row.get("latency_us_p50")]
        acc_mean, acc_std = mean_std(accuracy)
        delta_mean, delta_std = mean_std(deltas)
        record = {
            "Method": group[0].name,
            "Seeds": str(len(group)),
            "Accuracy mean ± std": f"{acc_mean:.3f} ± {acc_std:.3f}",
            "Per seed": ", ".join(f"{a:.3f}" for a in accuracy),
            "Δ vs teacher (pp)": f"{delta_mean:+.1f} ± {delta_std:.1f}",
            "× smaller": f"{mean_std([i.size_factor for i in group])[0]:.2f}×",
            "gzip × smaller": f"{mean_std([i.gzip_factor for i in group])[0]:.2f}×",
        }
        if latency:
            lat_mean, lat_std = mean_std(latency)
            record["Latency p50 µs"] = f"{lat_mean:.2f} ± {lat_std:.2f}"
        records.append(record)
    return records


def _closure_cells(pairs: list[GapClosure]) -> dict[str, str]:
    closures = [p.closure for p in pairs if p.closure is not None]
    mean = mean_std(closures) if closures else None
    per_seed = ", ".join("n/a" if p.closure is None else f"{p.closure:+.0%}" for p in pairs)
    p_values = ", ".join("?" if p.p_value is None else f"{p.p_value:.2f}" for p in pairs)
    if mean is None:
        closed = "undefined"
    elif len(pairs) == 1:
        closed = f"{mean[0]:+.0%}"
    else:
        closed = f"{mean[0]:+.0%} ± {mean[1]:.0%} ({per_seed})"
    return {
        "gap closed": closed,
        "wins": f"{sum(p.gain_pp > 0 for p in pairs)}/{len(pairs)}",
        "McNemar p": p_values,
    }


def distillation_section(items: list[Compared]) -> list[Block]:
    """Distillation credited only for what it adds beyond both scratch controls."""
    scratch = gap_closures(items, "student-scratch")
    mixup = gap_closures(items, "student-scratch-mixup")
    if not scratch and not mixup:
        return []
    records, notes = [], []
    for spec in dict.fromkeys([*scratch, *mixup]):
        pairs = scratch.get(spec) or mixup[spec]
        distilled = mean_std([p.distilled.row["accuracy"] for p in pairs])
        record = {
            "Distill": f"`{spec}`",
            "Seeds": str(len(pairs)),
            "Teacher": f"{mean_std([p.distilled.base['accuracy'] for p in pairs])[0]:.3f}",
            "Distilled": f"{distilled[0]:.3f} ± {distilled[1]:.3f}",
        }
        for control, closures in (("scratch", scratch.get(spec)), ("scratch+mixup", mixup.get(spec))):
            if not closures:
                continue
            record[control.capitalize()] = f"{mean_std([p.control['accuracy'] for p in closures])[0]:.3f}"
            record.update({f"{k} vs {control}": v for k, v in _closure_cells(closures).items()})
            wins = sum(p.gain_pp > 0 for p in closures)
            if wins < len(closures):
                notes.append(f"`{spec}` does **not** beat {control} on every seed ({wins} of "
                             f"{len(closures)}): distillation is not shown to help here.")
            elif wins == 1:
                notes.append(f"`{spec}` beats {control} on its one seed; run --seeds 3 or more "
                             "before trusting that.")
            else:
                notes.append(f"`{spec}` beats {control} on all {wins} seeds.")
            if any(p.gap_pp < MIN_GAP_PP for p in closures):
                notes.append(f"For `{spec}` the teacher is less than {MIN_GAP_PP:g} pp above "
                             f"{control} on some seed: gap closure there is test-set noise.")
        params = pairs[0].distilled.row.get("params") or {}
        if all(params.get(k) == v for k, v in DOCUMENT_DISTILL_PARAMS.items()) and \
                pairs[0].distilled.row["dataset"] == "synthetic":
            accuracies = [p.distilled.row["accuracy"] for p in pairs]
            notes.append(f"The source document reports {DOCUMENT_STUDENT_ACCURACY} for this setting "
                         f"from one unseeded run; here it is {distilled[0]:.3f} ± {distilled[1]:.3f} "
                         f"over {len(pairs)} seeds (range {min(accuracies):.3f}–{max(accuracies):.3f}).")
        records.append(record)
    return [
        Heading("Distillation against its controls"),
        Paragraph("Gap closed = (distilled − control) / (teacher − control), per seed; the "
                  "controls train the identical student with the same budget, batches and seed "
                  "without the teacher (plain, and with mixup). McNemar p compares the distilled "
                  "student with the control on the same test samples."),
        Table(records),
        Bullets(notes),
    ]


def adaptation_section(rows: list[Row], items: list[Compared]) -> list[Block]:
    """--scenario shift: the teacher zero-shot, fine-tuned two ways, and trained from scratch."""
    shifted = [i for i in items if i.row.get("scenario") == "shift"]
    if not shifted:
        return []
    records, notes = [], []
    for group in by_spec(shifted).values():
        row = group[0].row
        accuracy = mean_std([i.row["accuracy"] for i in group])
        records.append({
            "Method": "teacher, zero-shot" if row["strategy"] == "baseline" else label(row, rows),
            "Target accuracy": f"{accuracy[0]:.3f} ± {accuracy[1]:.3f}",
            "Δ vs zero-shot": "—" if row["strategy"] == "baseline" else
            f"{mean_std([i.delta_pp for i in group])[0]:+.1f} pp",
            "Train s": f"{mean_std([i.row['train_seconds'] or 0.0 for i in group])[0]:.2f}",
        })
    tuned = [i for i in shifted if i.name == "finetune"]
    scratch = [i for i in shifted if i.name == "retrain-scratch"]
    if tuned and scratch:
        best = max(by_spec(tuned).values(), key=lambda g: mean_std([i.row["accuracy"] for i in g])[0])
        tuned_acc = mean_std([i.row["accuracy"] for i in best])[0]
        scratch_acc = mean_std([i.row["accuracy"] for i in scratch])[0]
        tuned_s = mean_std([i.row["train_seconds"] or 0.0 for i in best])[0]
        scratch_s = mean_std([i.row["train_seconds"] or 0.0 for i in scratch])[0]
        verdict = "beats" if tuned_acc > scratch_acc else "does **not** beat"
        notes.append(f"The best fine-tuning ({label(best[0].row, rows)}) {verdict} training the same "
                     f"architecture from scratch on the target ({tuned_acc:.3f} against "
                     f"{scratch_acc:.3f}), in {tuned_s:.2f} s against {scratch_s:.2f} s.")
    return [
        Heading("Fine-tuning as adaptation (shift scenario)"),
        Paragraph("The teacher learned the source domain only; every row is scored on the shifted "
                  "target's test split, after training on its few labelled rows."),
        Table(records),
        Bullets(notes),
    ]


def best_per_family(rows: list[Row], items: list[Compared]) -> list[dict[str, str]]:
    """For each technique with several configurations: the most accurate, then the smallest."""
    records = []
    families = dict.fromkeys(i.row["family"] for i in items if not i.row.get("control"))
    for family in families:
        groups = [g for g in by_spec(i for i in items if i.row["family"] == family
                                     and not i.row.get("control")).values()]
        if len(groups) < 2:
            continue
        best = max(groups, key=lambda g: (round(mean_std([i.row["accuracy"] for i in g])[0], 6),
                                          mean_std([i.gzip_factor for i in g])[0]))
        records.append({
            "Family": family,
            "Best configuration": f"`{best[0].row['spec']}`",
            "Accuracy": f"{mean_std([i.row['accuracy'] for i in best])[0]:.3f}",
            "gzip × smaller": f"{mean_std([i.gzip_factor for i in best])[0]:.2f}×",
            "Of": f"{len(groups)} configurations",
        })
    return records


def findings(rows: list[Row], items: list[Compared]) -> list[str]:
    """Plain statements of what was measured, including the unwelcome ones."""
    if not any(i.row is i.base for i in items):
        return ["No baseline row finished, so nothing can be compared."]
    notes = []
    groups = by_spec(items)
    for group in groups.values():
        name, row = group[0].name, group[0].row
        ratio = mean_std([i.row["speedup"] for i in group if i.row.get("speedup")] or [0.0])[0]
        verdicts = {speed_verdict(i.row) for i in group}
        if name.startswith("quantize-int8") and "slower" in verdicts:
            notes.append(f"**{name} is slower than float32 on this CPU** ({ratio:.2f}× the "
                         "teacher's speed): int8 kernels and (de)quantize ops cost more than "
                         "they save here, although the file is "
                         f"{mean_std([i.size_factor for i in group])[0]:.1f}× smaller.")
        size_factor = mean_std([i.size_factor for i in group])[0]
        if row["family"] in ("pruning", "clustering") and size_factor < 1.1:
            change = (f"made {row['pruned_sparsity']:.0%} of the kernel weights zero"
                      if (row.get("pruned_sparsity") or 0) > 0.05 else
                      f"left at most {row.get('kernel_unique_max')} distinct values per kernel")
            notes.append(
                f"{name} {change}, yet the raw file is {size_factor:.2f}× smaller and speed is "
                f"{ratio:.2f}× ({', '.join(sorted(verdicts))}): dense kernels store and multiply "
                f"every weight; only the gzip size shrinks "
                f"({mean_std([i.gzip_factor for i in group])[0]:.1f}×)."
            )
    scratch = {group_key(i.row): i for i in items if i.name == "student-scratch"}
    gains = [(i.row["accuracy"] - scratch[group_key(i.row)].row["accuracy"]) * 100
             for i in items if i.name == "distill" and group_key(i.row) in scratch]
    if gains:
        mean, _ = mean_std(gains)
        wins = sum(g > 0 for g in gains)
        if wins == len(gains) and mean > 0:
            notes.append(f"Distillation beat the same student trained from scratch on {wins} of "
                         f"{len(gains)} seeds ({mean:+.1f} pp on average).")
        else:
            notes.append(f"Distillation did **not** reliably beat the same student trained from "
                         f"scratch: {mean:+.1f} pp on average, wins on {wins} of {len(gains)} "
                         "seeds. Credit the small size to the architecture, not to the teacher.")
    tuned = [i for i in items if i.name == "finetune"]
    if tuned:
        delta = mean_std([i.delta_pp for i in tuned])[0]
        notes.append(f"Training the teacher further for the fine-tuning budget alone changed "
                     f"accuracy by {delta:+.1f} pp: recovery gains smaller than this are extra "
                     "training, not the compression method.")
    unstable = sorted({i.name for i in items if i.row.get("latency_warning")})
    if unstable:
        notes.append(f"Latency was unstable for {', '.join(unstable)}: treat those timings with care.")
    cpus = {(r.get("env") or {}).get("cpu") for r in rows}
    if len(cpus) > 1:
        notes.append(f"**These results come from different CPUs** ({', '.join(map(str, cpus))}): "
                     "latency columns are not comparable across them.")
    return notes


def _header(rows: list[Row], manifests: list[dict[str, Any]]) -> list[str]:
    first = rows[0]
    env = first.get("env") or {}
    seeds = sorted({r["seed"] for r in rows})
    teachers = {(r["run_id"], r["seed"]): r for r in rows if r["strategy"] == "baseline"}
    accuracy = "; ".join(
        f"seed {r['seed']}: train {r['teacher_train_accuracy']:.3f}, validation "
        f"{r['teacher_val_accuracy']:.3f}" for r in teachers.values()
        if r.get("teacher_train_accuracy") is not None
    )
    items = [
        f"**Dataset:** {', '.join(sorted({r['dataset'] for r in rows}))}; "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}",
        f"**Teacher:** `{first['teacher_architecture']}`, "
        + ("from the cache" if first.get("teacher_cached") else "trained in this run")
        + (f" (accuracy {accuracy})" if accuracy else ""),
        f"**Machine:** {env.get('cpu')}, {env.get('cores')} cores; inference threads "
        f"{env.get('inference_threads')}; Python {env.get('python')}",
        "**Versions:** " + ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v),
    ]
    if first.get("preprocessing"):
        items.insert(1, f"**Your data:** {first['preprocessing']}")
    if first.get("class_names"):
        items.insert(1, f"**Classes:** {', '.join(map(str, first['class_names']))}")
    for manifest in manifests:
        command = (manifest.get("config") or {}).get("command")
        if command:
            items.append(f"**Command:** `{command}`")
        if not manifest.get("complete", True):
            items.append(f"**Run {manifest.get('run_id')} is incomplete:** it stopped early; "
                         "its unfinished rows are missing and rows without latency were not timed.")
    return items


def build_document(rows: list[Row], manifests: list[dict[str, Any]], folder: Path) -> Document:
    """Assemble the report and write its figures into ``folder``."""
    items = compared(rows)
    document = Document(f"Compression report: {', '.join(sorted({r['dataset'] for r in rows}))}")
    document.add(Bullets(_header(rows, manifests)))
    document.add(
        Heading("Common table"),
        Paragraph("Every model, the teacher included, is scored as a TFLite flatbuffer in the "
                  "LiteRT interpreter: batch-1 latency over interleaved rounds with a 95% "
                  "interval and a paired speed-up against the teacher; accuracy on the held-out "
                  "test split with a Wilson interval and an exact McNemar test against the "
                  "teacher. Best values are in bold."),
        Table(common_table(rows)),
    )
    if len({group_key(r) for r in rows}) > 1:
        document.add(Heading("Mean ± std over seeds"), Table(seeds_table(items)))
    best = best_per_family(rows, items)
    if best:
        document.add(Heading("Best configuration per family"),
                     Paragraph("Highest mean accuracy over seeds; ties go to the smaller gzip size. "
                               "The Pareto plots below show the whole trade-off."),
                     Table(best))
    document.add(Heading("What this run shows"), Bullets(findings(rows, items)))
    document.add(*distillation_section(items))
    document.add(*adaptation_section(rows, items))
    techniques = load_claims()["techniques"]
    document.add(
        Heading("The document's comparison, tested"),
        Paragraph("The source document's table, technique by technique:"),
        Table([{k: v for k, v in t.items() if k != "family"} for t in techniques]),
        Paragraph("Each measurable claim against this run's numbers (controls excluded, means "
                  "over seeds). *Not observed here* means this data showed no such effect; it "
                  "may still occur elsewhere."),
        Table(evaluate_claims(items)),
    )
    figures = []
    if items:
        plots.accuracy_tradeoff(items, folder / FIGURES["size"][0], cost="size")
        plots.accuracy_tradeoff(items, folder / FIGURES["latency"][0], cost="latency")
        plots.size_and_latency_bars(items, folder / FIGURES["bars"][0])
        figures = ["size", "latency", "bars"]
        synthetic = {r["dataset"] for r in rows} == {"synthetic"}
        if plots.teacher_vs_student(items, folder / FIGURES["students"][0], show_document=synthetic):
            figures.insert(2, "students")
    if figures:
        document.add(Heading("Figures"),
                     *[Image(folder / FIGURES[f][0], FIGURES[f][1]) for f in figures])
    document.add(Heading("Notes per row"), Bullets([
        f"**{r['strategy']}** (`{r['spec']}`, seed {r['seed']}): {r.get('notes') or r.get('reason') or ''}"
        for r in rows
    ]))
    return document


def _read_manifest(results: Path) -> dict[str, Any] | None:
    path = results.parent / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


def build_report(
    results: Path | str | Sequence[Path | str],
    out: Path | str | None = None,
    formats: Iterable[str] = ("md", "html"),
) -> Path:
    """Write the report for one or more runs' results; return the folder written to.

    ``results`` are results.jsonl files or run folders; several are merged.
    ``out`` defaults to the (first) run's folder.
    """
    paths = [Path(p) for p in ([results] if isinstance(results, (str, Path)) else results)]
    paths = [p / RESULTS_FILE if p.is_dir() else p for p in paths]
    formats = list(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UserError(f"unknown report format {', '.join(unknown) or '(none)'}; "
                        f"choose from {', '.join(FORMATS)}")
    rows = [row for path in paths for row in read_results(path)]
    manifests = [m for p in paths if (m := _read_manifest(p)) is not None]
    folder = Path(out) if out is not None else paths[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    document = build_document(rows, manifests, folder)
    if "md" in formats:
        write_atomic(folder / "report.md", document.markdown())
    if "html" in formats:
        write_atomic(folder / "report.html", document.html())
    if "csv" in formats:
        write_atomic(folder / "report.csv", to_csv(rows))
    return folder
