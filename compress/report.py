"""Reports from saved results only: never imports TensorFlow, so they rebuild anywhere.

``build_report`` reads one or more runs' ``results.jsonl`` (and each run's
``run.json`` when present) and writes ``report.md``, a self-contained
``report.html``, ``claims.csv`` and the figures they show.  Every pairing and
selection goes through ``compress.analysis`` by role; every verdict through
``compress.verdicts``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from compress import plots
from compress.analysis import (
    DOCUMENT_DISTILL_PARAMS,
    DOCUMENT_STUDENT_ACCURACY,
    Config,
    Pairing,
    Row,
    compared,
    configurations,
    frontier,
    group_key,
    pairings,
)
from compress.claims import evaluate_claims, load_claims
from compress.document import Block, Bullets, Cell, Details, Document, Heading, Image, Paragraph, Table
from compress.errors import UserError, flag_names
from compress.fileio import write_atomic
from compress.outdir import check_output, folder_kind, open_output
from compress.recommend import DEFAULT_MAX_DROP_PP, NothingQualifies, default_choices
from compress.results import (
    CSV_FILE,
    RESULTS_FILE,
    comparable_group,
    mixed,
    read_runs,
    require_one_group,
    to_csv,
)
from compress.stats import detectable_difference, mean_interval
from compress.verdicts import CSV_COLUMNS, Verdict

FORMATS = ("md", "html", "csv")
CLAIMS_FILE = "claims.csv"
FIGURES = {
    "size": ("accuracy_vs_size.png", "Accuracy against size, with the frontier of significant gains"),
    "latency": ("accuracy_vs_latency.png", "Accuracy against latency, with the frontier of "
                "significant gains"),
    "students": ("teacher_vs_student.png", "Teacher, its controls and the technique"),
    "bars": ("size_and_latency.png", "Size and latency per configuration"),
}
#: Assumed share of disagreeing test samples when a run has no comparison to measure it.
ASSUMED_DISCORDANCE = 0.10
KIB = 1024


def _kib(value: float) -> str:
    return f"{value / KIB:,.1f}"


def _method(config: Config) -> Cell:
    """The short label, with the full spec as a tooltip; a control names what it controls."""
    text = config.label
    if config.role == "control":
        text += " (control)"
    return Cell(text, title=config.spec)


def _interval(values: tuple[float, float, float], digits: int) -> str:
    mean, low, high = values
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _accuracy_change(config: Config) -> str:
    test = config.against_teacher
    if test is None:
        return "—"
    return f"{test.effect_pp:+.1f} pp (p={test.p():.2g})"


def _speed(config: Config) -> str:
    if not config.speedup:
        return "—"
    ratio, low, high = config.speedup
    return f"{ratio:.2f}× [{low:.2f}, {high:.2f}] {config.speed}"


def common_table(configs: list[Config], failed: list[Row]) -> Table:
    """One row per configuration, means with 95% intervals over seeds; failures after them."""
    records: list[dict[str, str | Cell]] = []
    several = len({c.row.get("dataset") for c in configs}) > 1
    for config in configs:
        records.append({
            "Method": _method(config),
            **({"Dataset": str(config.row.get("dataset"))} if several else {}),
            "Family": config.family,
            "Seeds": str(config.seeds),
            "Size KiB": _kib(config.size_bytes),
            "× smaller": f"{config.size_factor:.2f}×",
            "gzip KiB": _kib(config.gzip_bytes),
            "gzip × smaller": f"{config.gzip_factor:.2f}×",
            "Arena KiB": _kib(config.arena_bytes) if config.arena_bytes is not None else "—",
            "RSS + KiB": _kib(config.model_rss_bytes) if config.model_rss_bytes is not None else "—",
            "Latency p50 µs [95% CI]": _interval(config.latency, 2) if config.latency else "not timed",
            "Speed-up vs teacher": _speed(config),
            "Accuracy [95% CI]": _interval(config.accuracy, 3),
            "Δ accuracy vs teacher": _accuracy_change(config),
            "Train s": f"{config.train_seconds:.1f}",
        })
    for row in failed:
        records.append({"Method": Cell(str(row.get("label") or row["spec"]), title=str(row["spec"])),
                        "Family": str(row.get("family") or ""), "Seeds": str(row.get("seed")),
                        "Size KiB": f"{row['status']}: {row.get('reason') or ''}"})
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


def seeds_details(rows: list[Row]) -> Details:
    """Every row of every seed, for whoever wants to check the aggregation."""
    records = []
    for item in compared(rows):
        row = item.row
        records.append({
            "Method": Cell(str(row.get("label") or row["spec"]), title=str(row["spec"])),
            "Run": str(row["run_id"]), "Seed": str(row["seed"]),
            "Size KiB": _kib(row["size_bytes"]),
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
        records.append({"Family": family, "Best configuration": _method(best),
                        "Accuracy": f"{best.accuracy[0]:.3f}",
                        "gzip × smaller": f"{best.gzip_factor:.2f}×",
                        "Of": f"{len(group)} configurations"})
    return records


def _closure(pairing: Pairing) -> str:
    closure, why = pairing.gap_closure()
    if closure is None:
        return why
    text = f"{closure:.0%}"
    if closure > 1:
        text += " (above 100%: it beats the teacher)"
    elif closure < 0:
        text += " (below 0: worse than the control)"
    return text


def controls_section(found: list[Pairing]) -> list[Block]:
    """Each technique against each of its same-budget controls, paired through control_of."""
    if not found:
        return []
    records, notes = [], []
    for pairing in found:
        gain = pairing.gain
        wins, seeds = pairing.wins
        effect = "—" if gain is None else (
            f"{gain.effect_pp:+.1f} pp [{gain.interval_pp[0]:+.1f}, {gain.interval_pp[1]:+.1f}]")
        records.append({
            "Technique": _method(pairing.technique),
            "Control": _method(pairing.control),
            "Seeds": str(seeds),
            "Technique acc.": f"{pairing.technique.accuracy[0]:.3f}",
            "Control acc.": f"{pairing.control.accuracy[0]:.3f}",
            "Gain vs control": effect,
            "p (pooled McNemar)": "—" if gain is None else f"{gain.p():.2g}",
            "Wins": f"{wins}/{seeds}",
            "Gap closed": "n/a (budgets differ)" if pairing.unequal_budgets else _closure(pairing),
        })
        if pairing.unequal_budgets:
            notes.append(f"{pairing.technique.label} against {pairing.control.label} is **not** a "
                         f"same-budget comparison: {pairing.unequal_budgets}. No verdict rests on "
                         "it; give a longer --time-budget, or none, to compare them.")
        elif gain is not None and gain.p() > 0.05:
            notes.append(f"{pairing.technique.label} is **not** shown to beat {pairing.control.label} "
                         f"({gain.effect_pp:+.1f} pp, p = {gain.p():.2g}; this comparison detects "
                         f"≥ {gain.detectable_pp:.1f} pp): credit its result to what the control "
                         "shares with it, not to the technique.")
        if seeds == 1:
            notes.append(f"{pairing.technique.label} against {pairing.control.label} rests on one "
                         "seed; run --seeds 3 or more before trusting the direction.")
        params = pairing.technique.row.get("params") or {}
        if all(params.get(k) == v for k, v in DOCUMENT_DISTILL_PARAMS.items()) and \
                pairing.technique.row.get("dataset") == "document":
            mean, low, high = pairing.technique.accuracy
            notes.append(f"The source document reports {DOCUMENT_STUDENT_ACCURACY} for this setting "
                         f"from one unseeded run; here it is {mean:.3f} [{low:.3f}, {high:.3f}] over "
                         f"{pairing.technique.seeds} seed(s).")
    return [
        Heading("Techniques against their controls"),
        Paragraph("A control trains with the technique's own budget, batches, seed and resolved "
                  "settings but without the technique itself (e.g. the same student without the "
                  "teacher). Gain: technique minus control, pooled exact McNemar over seeds. Gap "
                  "closed = gain / (teacher − control), shown only where the teacher is "
                  "significantly better than the control."),
        Table(records),
        Bullets(list(dict.fromkeys(notes))),
    ]


def _why_nothing(config: Config) -> str:
    """Why a row predicts no better than the majority class: what trains can learn too little;
    a conversion that trained nothing lost what the teacher knew."""
    if config.row.get("training_cost") != 0:  # trained (or an older row, which does not say)
        return "it learned nothing usable here (a training too short, or a model too small for this data)."
    if (config.row.get("arithmetic") or "").startswith("int"):
        return ("its conversion lost what the teacher knew; it trained nothing. With integer "
                "activations every input feature shares one scale, so features on very different "
                "scales (raw units, before the model's own normalisation) round to a few values: "
                "standardize the inputs before the model, or keep float activations.")
    return "its conversion lost what the teacher knew; it trained nothing."


def findings(configs: list[Config], rows: list[Row]) -> list[str]:
    """Plain statements of what was measured, including the unwelcome ones."""
    notes = []
    for config in configs:
        if config.role == "baseline":
            continue
        floor = config.row.get("majority_rate")
        if floor is not None and config.accuracy[0] <= floor:
            notes.append(f"**{config.label} is no better than always predicting the majority class** "
                         f"({config.accuracy[0]:.3f} against {floor:.3f}): {_why_nothing(config)}")
        if (config.row.get("arithmetic") or "").startswith("int") and config.speed == "slower":
            notes.append(f"**{config.label} is slower than float32 on this CPU** "
                         f"({config.speedup[0]:.2f}× the teacher's speed), although its file is "  # type: ignore[index]
                         f"{config.size_factor:.1f}× smaller: integer kernels and (de)quantize ops "
                         "cost more than they save here.")
        sparse = (config.row.get("pruned_sparsity") or 0) > 0.05
        unique = config.row.get("kernel_unique_max")
        teacher_unique = config.items[0].base.get("kernel_unique_max")
        # clustered: few values per kernel, and far fewer than the teacher's (a kernel of 192
        # weights has at most 192 values whatever training did)
        clustered = unique is not None and unique <= 256 and (teacher_unique or 0) >= 4 * unique
        if (sparse or clustered) and config.size_factor < 1.1:
            change = (f"made {config.row['pruned_sparsity']:.0%} of the pruned kernel weights zero"
                      if sparse else
                      f"left at most {config.row['kernel_unique_max']} distinct values per kernel")
            speed = (f" It measured {_speed(config)} although the same dense kernels multiply every "
                     "weight: check the latency warnings before crediting the technique."
                     if config.speed == "faster" else
                     f" Speed is {_speed(config)}: the dense kernels multiply every weight too.")
            notes.append(f"{config.label} {change}, yet the raw file is {config.size_factor:.2f}× "
                         f"smaller: dense kernels store every weight; only the gzip size shrinks "
                         f"({config.gzip_factor:.1f}×).{speed}")
    cut = sorted({r["label"] for r in rows if r.get("budget_stopped") and r["status"] == "ok"})
    if cut:
        notes.append(f"**Stopped by the time budget:** {', '.join(cut)}. Their training was cut "
                     "short (each row's notes say how far it got), so they may look worse than "
                     "they would with their full budget.")
    unstarted = sorted({r["label"] for r in rows if r.get("budget_stopped") and r["status"] != "ok"})
    if unstarted:
        notes.append(f"**Not started, the time budget was spent:** {', '.join(unstarted)}.")
    unstable = sorted({c.label for c in configs if c.unstable})
    if unstable:
        notes.append(f"Latency was unstable for {', '.join(unstable)}: treat those timings with care.")
    cpus = {(r.get("env") or {}).get("cpu") for r in rows}
    if len(cpus) > 1:
        notes.append(f"**These results come from different CPUs** ({', '.join(map(str, cpus))}): "
                     "latency columns are not comparable across them.")
    return notes


def recommendation_section(rows: list[Row]) -> list[Block]:
    """The report's decision under default budgets: smallest, and fastest, within 1 pp."""
    items = []
    for objective, choice in default_choices(rows).items():
        if isinstance(choice, NothingQualifies):
            items.append(f"**{objective.capitalize()}:** {choice}")
            continue
        head, *rest = choice.reasons()
        items.append(f"**{'Smallest' if objective == 'size' else 'Fastest'}:** {head} " + " ".join(rest))
    return [
        Heading("Recommendation"),
        Paragraph(f"Under the default budget (at most {DEFAULT_MAX_DROP_PP:g} pp below the teacher's "
                  "mean accuracy; controls are never candidates). Differences within measurement "
                  "noise are ties, broken toward the smaller model, then the one cheaper to train. "
                  "`compress recommend` applies other budgets with the same code."),
        Bullets(items),
    ]


def _pp(value: float) -> str:
    """Signed percentage points, without a minus sign on zero."""
    return f"{value + 0.0:+.2f}" if round(value, 2) != 0 else "0.00"


def _pp_or_blank(loss: float | None) -> str:
    """A loss in points as a signed change, blank when there is none (a failed seed)."""
    return "" if loss is None else _pp(-loss)


def tune_section(tune: dict[str, Any]) -> list[Block]:
    """What ``compress tune`` searched, found and chose; validation numbers are labelled so."""
    search, teacher = tune["search"], tune["teacher"]
    trials = tune["trials"]
    objective = "smallest gzip file" if tune["objective"] == "size" else "fastest model at batch 1"
    base_gzip = teacher["size_gzip_bytes"]

    def record(t: dict[str, Any]) -> dict[str, str | Cell]:
        ok = t["status"] == "ok"
        out: dict[str, str | Cell] = {
            "Configuration": Cell(t["label"], title=t["spec"]),
            "Val. accuracy": f"{t['val_accuracy']:.4f}" if ok else "",
            "Δ pp": _pp(-t["drop_pp"]) if ok else "",
            "gzip KiB": _kib(t["size_gzip_bytes"]) if ok else "",
            "× smaller (gzip)": f"{base_gzip / t['size_gzip_bytes']:.1f}" if ok else "",
        }
        if tune["objective"] == "latency":
            out["Speed-up"] = f"{t['speedup']:.2f}×" if ok and t.get("speedup") else ""
        return out

    by_spec = {t["spec"]: t for t in trials}
    front = [record(by_spec[spec]) for spec in tune["front"] if spec in by_spec]
    plain: dict[str, dict[str, Any]] = {}
    for t in trials:
        if t["stages"] == 1 and t["status"] == "ok":
            name = t["spec"].split(":")[0]
            best = plain.get(name)
            if best is None or t["drop_pp"] < best["drop_pp"]:
                plain[name] = t
    blocks: list[Block] = [
        Heading("Search (compress tune)"),
        Paragraph(f"Objective: the {objective} within {tune['max_accuracy_drop']:g} pp of the "
                  f"teacher. {len(trials)} trials in {search['seconds'] / 60:.1f} min "
                  f"({search['reused']} reused from an earlier tune; stopped by: {search['stopped']}), "
                  f"scored on the **validation split** of the first seed only; {search['sampler']}. "
                  "The test split was read only afterwards, to measure the configurations of the "
                  "common table, so their test accuracy is not inflated by the search."),
    ]
    test = tune.get("test")
    if tune.get("chosen_spec"):
        chosen = by_spec.get(tune["chosen_spec"], {})
        lines = [f"**Chosen:** {tune['chosen_label']} (`{tune['chosen_spec']}`)."]
        if chosen:
            lines.append(f"On validation: {_pp(-chosen['drop_pp'])} pp, "
                         f"{base_gzip / chosen['size_gzip_bytes']:.1f}× smaller (gzip) than the teacher.")
        if test:
            met = "within" if tune.get("test_meets_budget") else "**outside**"
            lines.append(f"On the test split over {test['seeds']} seed(s): accuracy {test['accuracy']:.4f} "
                         f"against the teacher's {test['teacher_accuracy']:.4f} ({_pp(-test['drop_pp'])} "
                         f"pp, {met} the budget), {test['times_smaller_gzip']:.1f}× smaller (gzip), "
                         f"{test['times_smaller_raw']:.1f}× smaller (raw)"
                         + (f", {test['speedup']:.2f}× faster." if test.get("speedup") else "."))
            if not tune.get("test_meets_budget"):
                lines.append("The choice met the budget on validation but not on the test split: "
                             "a validation split this size cannot tell such differences apart; "
                             "tune with a smaller --max-accuracy-drop for a margin.")
        blocks.append(Bullets(lines))
    else:
        blocks.append(Paragraph("**No configuration met the budget on validation.**"))
    confirmation = tune.get("confirmation") or {}
    if confirmation:
        first = next(iter(confirmation.values()))
        pooled = ", ".join(map(str, first["pooled_seeds"]))
        confidence = f"{first['confidence']:.0%}"
        why = ("the first seed's split chose the candidates, so it is not trusted to confirm them"
               if len(first["drops_pp"]) > 1 else "with one seed, the split that chose the candidates "
               "also confirms them, which flatters them: give --seeds 3 for an independent check")
        blocks += [
            Paragraph(f"Before the choice, candidates were scored again on the validation split of "
                      f"every seed (its own splits and teacher), best first. The choice is the best "
                      f"whose loss, pooled over the paired predictions of seed(s) {pooled}, stays "
                      f"within the budget with {confidence} confidence ({why}):"),
            Table([{"Configuration": Cell(by_spec[spec]["label"], title=spec) if spec in by_spec else spec,
                    "Δ pp per seed (validation)": ", ".join("failed" if d is None else _pp(-d)
                                                            for d in proof["drops_pp"]),
                    f"pooled Δ pp (seeds {pooled})": _pp_or_blank(proof["drop_pp"]),
                    f"worst Δ pp at {confidence}": _pp_or_blank(proof["upper_pp"]),
                    "Within budget": "yes" if proof["within_budget"] else "no"}
                   for spec, proof in confirmation.items()]),
        ]
    blocks += [
        Paragraph("The front found: no other trial is both smaller (or faster) and more accurate "
                  "on validation."),
        Table(front),
        Paragraph("Each strategy alone, its best trial (validation), for what the chains add:"),
        Table([record(t) for t in sorted(plain.values(), key=lambda t: t["size_gzip_bytes"])]),
        Details(f"All {len(trials)} trials", [Table([
            {"#": str(t["number"]), **record(t), "Status": t["status"] + (" (reused)" if t["reused"] else ""),
             "Why": t.get("reason") or ""} for t in trials])]),
    ]
    return blocks


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


def resolution(configs: list[Config]) -> tuple[int, float]:
    """(test samples per seed, the smallest accuracy difference one seed's split can detect)."""
    n = max((c.n_test for c in configs), default=0)
    observed = [c.against_teacher.discordance for c in configs
                if c.against_teacher is not None and c.role != "baseline"]
    discordance = statistics.median(observed) if observed else ASSUMED_DISCORDANCE
    return n, (100 * detectable_difference(n, discordance) if n else float("inf"))


def _timing_span(seconds: float | None) -> str:
    """How long each model was timed, when the run recorded it (older runs did not)."""
    if seconds is None:
        return ""
    if seconds == 0:
        return ("; timed with COMPRESS_LATENCY_SPAN=0, its rounds only: a second of slowed core "
                "can skew a latency")
    return f"; each model timed over at least {seconds:g} s"


def _header(rows: list[Row], manifests: list[dict[str, Any]], configs: list[Config]) -> list[str]:
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
        command = (manifest.get("config") or {}).get("command")
        if command and f"**Command:** `{command}`" not in items:  # a copied run says it once
            items.append(f"**Command:** `{command}`")
        for seed, why in (manifest.get("weak_teacher") or {}).items():
            items.insert(0, f"**Weak teacher (seed {seed}, allowed by --allow-weak-teacher):** {why}.")
        budget = (manifest.get("config") or {}).get("time_budget")
        if budget:
            cut = {seed: t["budget_stopped"] for seed, t in (manifest.get("teachers") or {}).items()
                   if t.get("budget_stopped")}
            teacher = "; ".join(f"the teacher (seed {seed}) stopped after {what}, so it was not "
                                "cached" for seed, what in cut.items())
            items.insert(0, f"**Time budget:** {budget:g} min for all training, shared by cost"
                         + (f"; {teacher}" if teacher else "") + ".")
        if not manifest.get("complete", True):
            items.insert(0, f"**Run {manifest.get('run_id')} is incomplete:** it stopped early; "
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


def build_document(rows: list[Row], manifests: list[dict[str, Any]], folder: Path,
                   tunes: Sequence[dict[str, Any]] = (), figure_prefix: str = "",
                   ) -> tuple[Document, list[Verdict]]:
    """Assemble the report (writing its figures into ``folder``) and its claim verdicts;
    ``tunes`` are the tune.json of tune folders among the results."""
    datasets = sorted({str(r.get("dataset")) for r in rows})
    configs = configurations(rows)
    found = pairings(configs)
    failed = [r for r in rows if r["status"] != "ok"]
    document = Document(f"Compression report: {', '.join(datasets)}")
    document.add(Bullets(_header(rows, manifests, configs)))
    if not any(c.role == "baseline" for c in configs):
        document.add(Paragraph("**No baseline row finished, so nothing can be compared.**"))
    document.add(*recommendation_section(rows))
    for tune in tunes:
        document.add(*tune_section(tune))
    document.add(
        Heading("Common table"),
        Paragraph("Every model, the teacher included, is scored as a TFLite flatbuffer in the "
                  "LiteRT interpreter: batch-1 latency over interleaved rounds with a paired "
                  "speed-up against the teacher; accuracy on the held-out test split. One row per "
                  "configuration; per-seed rows below."),
        common_table(configs, failed),
        Details("Full specs, to re-run any row", [Bullets(
            [f"**{c.label}**: `{c.spec}`" + (f" (controls `{c.control_of}`)" if c.control_of else "")
             for c in configs])]),
        seeds_details(rows),
    )
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
    notes = {(c.label, c.row.get("notes") or ""): c for c in configs if c.row.get("notes")}
    document.add(Heading("Notes per configuration"),
                 Bullets([f"**{label}**: {text}" for label, text in notes] or ["(none)"]))
    return document, verdicts


def _json_file(path: Path, remedy: str) -> Any:
    """A JSON file beside the results, or None when there is none; unreadable is one line."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; {remedy}") from None


def _read_manifest(results: Path) -> dict[str, Any] | None:
    """A run's run.json, its parts the report reads checked for their types."""
    path = results.parent / "run.json"
    manifest = _json_file(path, "the run folder is damaged")
    if manifest is None:
        return None
    shapes = {"config": dict, "weak_teacher": dict, "complete": bool, "run_id": str}
    wrong = [key for key, kind in shapes.items() if isinstance(manifest, dict)
             and manifest.get(key) is not None and not isinstance(manifest[key], kind)]
    if not isinstance(manifest, dict) or wrong:
        problem = f"{wrong[0]} has the wrong type" if wrong else "not an object"
        raise UserError(f"{path} is damaged ({problem}); re-run, or delete run.json to report the "
                        "results alone")
    return manifest


def _read_tune(results: Path) -> dict[str, Any] | None:
    """A tune folder's tune.json, checked for the parts the report reads."""
    from compress.tune import TUNE_FILE

    path = results.parent / TUNE_FILE
    tune = _json_file(path, "re-run the same compress tune to rewrite it")
    if tune is None:
        return None
    needed = {"objective": str, "max_accuracy_drop": (int, float), "trials": list, "front": list,
              "teacher": dict, "search": dict}
    wrong = [key for key, kind in needed.items() if not isinstance(tune, dict)
             or not isinstance(tune.get(key), kind)]
    if wrong:
        raise UserError(f"{path} is damaged ({wrong[0]} is missing or of the wrong type); re-run the "
                        "same compress tune to rewrite it")
    return tune


def mixed_document(rows: list[Row], manifests: list[dict[str, Any]], folder: Path,
                   tunes: Sequence[dict[str, Any]] = ()) -> tuple[Document, list[Verdict]]:
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
        part, found = build_document(group, [m for m in manifests if m.get("run_id") in runs], folder,
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
        require_one_group(rows, "report them separately, or pass --allow-mixed to group them by dataset")
    manifests = [m for p in paths if (m := _read_manifest(p)) is not None]
    tunes = [t for p in paths if (t := _read_tune(p)) is not None]
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
