"""The report's prose sections: techniques against their controls, findings, the
recommendation and a tune's search, each from saved rows (and a tune's saved tune.json).
"""

from __future__ import annotations

import math
import statistics
from statistics import NormalDist

from compress.analysis.configurations import (
    DOCUMENT_DISTILL_PARAMS,
    DOCUMENT_STUDENT_ACCURACY,
    Config,
    Pairing,
    Row,
)
from compress.analysis.devices import Device, fits, parse_device
from compress.analysis.recommend import DEFAULT_MAX_DROP_PP, NothingQualifies, default_choices
from compress.common.stats import detectable_difference
from compress.report.document import Block, Bullets, Cell, Details, Heading, Paragraph, Table
from compress.report.tables import kib, method_cell, signed_pp, signed_pp_or_blank, speed_cell
from compress.results.tune_record import TrialRecord, TuneRecord

#: Assumed share of disagreeing test samples when a run has no comparison to measure it.
ASSUMED_DISCORDANCE = 0.10


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
            "Technique": method_cell(pairing.technique),
            "Control": method_cell(pairing.control),
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
            speed = (f" It measured {speed_cell(config)} although the same dense kernels multiply every "
                     "weight: check the latency warnings before crediting the technique."
                     if config.speed == "faster" else
                     f" Speed is {speed_cell(config)}: the dense kernels multiply every weight too.")
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


def recommendation_section(rows: list[Row], device: Device | None = None) -> list[Block]:
    """The report's decision under default budgets: smallest, and fastest, within 1 pp (and
    fitting ``device``)."""
    items = []
    for objective, choice in default_choices(rows, device).items():
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
                  "`compress recommend` applies other budgets with the same code."
                  + (f" Only configurations that fit the device, {device.describe()}, are candidates."
                     if device is not None else "")),
        Bullets(items),
    ]


def device_section(configs: list[Config], device: Device) -> list[Block]:
    """Which configurations fit the device, and for those that do not, by how much and why; with
    the MACs of each, since an x86 latency is not a board's."""
    records: list[dict[str, str | Cell]] = []
    for config in configs:
        answers = [fits(item.row, device) for item in config.items]
        fit = "yes" if all(a[0] for a in answers) else "unknown" if any(a[0] is None for a in answers) \
            else "no"
        why = next((text for ok, text in answers if not ok), answers[0][1])
        macs = config.mean("macs")
        records.append({"Method": Cell(config.label, title=config.spec), "Fits": fit,
                        "MACs": "—" if macs is None else f"{macs:,.0f}", "Why": why})
    fitting = sum(r["Fits"] == "yes" for r in records)
    return [Heading(f"On the device: {device.name}"),
            Paragraph(f"{device.describe()}. {fitting} of {len(records)} configurations fit; a "
                      "fitting model's C array and arena size are written beside its .tflite "
                      "(the .h file of the same name)." if device.micro else
                      f"{device.describe()}: every configuration runs there as measured."),
            Table(records)]


def tune_section(tune: TuneRecord) -> list[Block]:
    """What ``compress tune`` searched, found and chose; validation numbers are labelled so."""
    search, trials = tune.search, tune.trials
    objective = "smallest gzip file" if tune.objective == "size" else "fastest model at batch 1"
    base_gzip = tune.teacher.size_gzip_bytes
    timed = tune.objective == "latency" or any(t.speedup for t in trials)
    board = _board(tune) is not None  # each trial was measured in TFLite Micro

    def record(t: TrialRecord) -> dict[str, str | Cell]:
        ok = t.status == "ok"
        out: dict[str, str | Cell] = {
            "Configuration": Cell(t.label, title=t.spec),
            "Val. accuracy": f"{t.val_accuracy:.4f}" if ok else "",
            "Δ pp": signed_pp(-t.drop_pp) if ok else "",
            "gzip KiB": kib(t.size_gzip_bytes) if ok else "",
            "× smaller (gzip)": f"{base_gzip / t.size_gzip_bytes:.1f}" if ok else "",
        }
        if timed:
            out["Speed-up"] = f"{t.speedup:.2f}×" if ok and t.speedup else ""
        if board:
            out["Fits the device"] = "" if t.fits is None else ("yes" if t.fits else f"no: {t.fit}")
        return out

    by_spec = {t.spec: t for t in trials}
    front = [record(by_spec[spec]) for spec in tune.front if spec in by_spec]
    plain: dict[str, TrialRecord] = {}
    for t in trials:
        if t.stages == 1 and t.status == "ok":
            name = t.spec.split(":")[0]
            best = plain.get(name)
            if best is None or t.drop_pp < best.drop_pp:
                plain[name] = t
    blocks: list[Block] = [
        Heading("Search (compress tune)"),
        Paragraph(f"Objective: the {objective} within {tune.max_accuracy_drop:g} pp of the "
                  f"teacher{_speed_limit(tune)}{_device_limit(tune)}. {len(trials)} trials in "
                  f"{search.seconds / 60:.1f} min "
                  f"({search.reused} reused from an earlier tune; stopped by: {search.stopped}), "
                  f"scored on the **validation split** of the first seed only; {search.sampler}. "
                  "The test split was read only afterwards, to measure the configurations of the "
                  "common table, so their test accuracy is not inflated by the search."
                  f"{_resolution(tune)}"),
    ]
    if search.families:
        blocks += [
            Paragraph("Trials per family (of each configuration's first stage): why a family lost "
                      "is here, not only who won. Admissible: within the budget on the search split; "
                      "plausibly admissible: not ruled out by it, and so a candidate for the "
                      "confirmation."),
            Table([{"Family": family, "Proposals": str(f.proposals), "Trained": str(f.trained),
                    "Admissible": str(f.admissible),
                    **({"Plausibly admissible": str(f.plausible)} if f.plausible is not None else {}),
                    "Best admissible": f.best or "none",
                    "Its Δ pp": "" if f.best_drop_pp is None else signed_pp(-f.best_drop_pp)}
                   for family, f in search.families.items()]),
        ]
    blocks.append(_choice(tune, by_spec.get(tune.chosen_spec) if tune.chosen_spec else None))
    blocks += _confirmation(tune, by_spec)
    blocks += [
        Paragraph("The front found: no other trial is both smaller (or faster) and more accurate "
                  "on validation."),
        Table(front),
        Paragraph("Each strategy alone, its best trial (validation), for what the chains add:"),
        Table([record(t) for t in sorted(plain.values(), key=lambda t: t.size_gzip_bytes or 0)]),
        Details(f"All {len(trials)} trials", [Table([
            {"#": str(t.number), **record(t), "Status": t.status + (" (reused)" if t.reused else ""),
             "Why": t.reason or ""} for t in trials])]),
    ]
    return blocks


def _choice(tune: TuneRecord, chosen: TrialRecord | None) -> Block:
    """The choice on validation (where it was found and confirmed), then on the test split."""
    if not tune.chosen_spec:
        return Paragraph("**No configuration met the budget on validation.**")
    lines = [f"**Chosen:** {tune.chosen_label} (`{tune.chosen_spec}`)."]
    if chosen:
        speed = f", {chosen.speedup:.2f}× as fast at batch 1" if chosen.speedup else ""
        smaller = tune.teacher.size_gzip_bytes / chosen.size_gzip_bytes
        proof = tune.confirmation.get(tune.chosen_spec)
        pooled = "" if not proof or proof.drop_pp is None else (
            f", and {signed_pp(-proof.drop_pp)} pp pooled over the validation splits of seeds "
            f"{', '.join(map(str, proof.pooled_seeds))} (at worst "
            f"{signed_pp(-proof.upper_pp)} pp at {proof.confidence:.0%} confidence)")
        lines.append(f"On validation: {signed_pp(-chosen.drop_pp)} pp on the split that found it"
                     f"{pooled}; {smaller:.1f}× smaller (gzip) than the teacher{speed}.")
    test = tune.test
    if test:
        met = "within" if tune.test_meets_budget else "**outside**"
        lines.append(f"On the test split over {test.seeds} seed(s): accuracy {test.accuracy:.4f} "
                     f"against the teacher's {test.teacher_accuracy:.4f} "
                     f"({signed_pp(-test.drop_pp)} pp, {met} the budget), "
                     f"{test.times_smaller_gzip:.1f}× smaller (gzip), "
                     f"{test.times_smaller_raw:.1f}× smaller (raw)"
                     + (f", {test.speedup:.2f}× faster." if test.speedup else "."))
        if not tune.test_meets_budget:
            lines.append("The choice met the budget on the pooled validation splits but not on the "
                         "test split: splits this size cannot tell such differences apart; "
                         "tune with a smaller --max-accuracy-drop for a margin.")
    return Bullets(lines)


def _confirmation(tune: TuneRecord, by_spec: dict[str, TrialRecord]) -> list[Block]:
    """Each candidate on every seed's validation split, and the rule that chose among them."""
    if not tune.confirmation:
        return []
    first = next(iter(tune.confirmation.values()))
    pooled = ", ".join(map(str, first.pooled_seeds))
    confidence = f"{first.confidence:.0%}"
    why = ("the first seed's split chose the candidates, so it is not trusted to confirm them"
           if len(first.drops_pp) > 1 else "with one seed, the split that chose the candidates "
           "also confirms them, which flatters them: give --seeds 3 for an independent check")
    return [
        Paragraph(f"Before the choice, candidates were scored again on the validation split of "
                  f"every seed (its own splits and teacher){_extra_seeds(tune)}, in a fixed "
                  f"sequence, the likeliest within the budget first (by the first seed's loss). "
                  f"A candidate is certified when its loss, pooled over the paired predictions of "
                  f"seed(s) {pooled}, stays within the budget with {confidence} confidence ({why}); "
                  f"the sequence stops at the first that is not, and the choice is the best of "
                  f"those certified before it (docs/verdicts.md, \"Budgets\"):"),
        Table([{"Configuration": Cell(by_spec[spec].label, title=spec) if spec in by_spec else spec,
                "Δ pp per seed (validation)": ", ".join("failed" if d is None else signed_pp(-d)
                                                        for d in proof.drops_pp),
                f"pooled Δ pp (seeds {pooled})": signed_pp_or_blank(proof.drop_pp),
                f"worst Δ pp at {confidence}": signed_pp_or_blank(proof.upper_pp),
                "Within budget": "yes" if proof.within_budget else "no"}
               for spec, proof in tune.confirmation.items()]),
    ]


def _speed_limit(tune: TuneRecord) -> str:
    slowdown = tune.max_slowdown
    if slowdown is None:
        return ""
    return (", and never slower than the teacher" if slowdown == 1 else
            f", and at most {slowdown:g}× the teacher's latency")


def _board(tune: TuneRecord) -> Device | None:
    """The microcontroller the tune's choice had to fit, if any."""
    device = parse_device(tune.device) if tune.device else None
    return device if device is not None and device.micro else None


def _device_limit(tune: TuneRecord) -> str:
    device = _board(tune)
    if device is None:
        return ""
    return (f", fitting {device.describe()}: every trial was measured in TFLite Micro on the "
            "validation split, and only those that fit could be chosen")


def _extra_seeds(tune: TuneRecord) -> str:
    extra = tune.search.validation_only_seeds
    if not extra:
        return ""
    named = f"seed {extra[0]} was" if len(extra) == 1 else \
        f"seeds {', '.join(map(str, extra[:-1]))} and {extra[-1]} were"
    return (f"; {named} added for this alone, so that the pooled rows can resolve the budget "
            "(their test splits are never measured)")


def _resolution(tune: TuneRecord) -> str:
    """How many samples one percentage point is, where the choice was made and confirmed."""
    rows = tune.search.validation_rows
    if not rows:
        return ""
    budget = tune.max_accuracy_drop
    text = (f" On that split of {rows:,} rows one sample is {100 / rows:.2f} pp, so the "
            f"{budget:g} pp budget is {rows * budget / 100:.1f} samples")
    pooled = next((proof.n for proof in tune.confirmation.values() if proof.n), 0)
    if pooled:
        text += f"; the confirmation pools {pooled:,} paired rows ({pooled / 100:.1f} samples per pp)"
        resolve = tune.search.resolve
        if resolve:
            z = NormalDist().inv_cdf(resolve.confidence)
            margin = 100 * z * math.sqrt(resolve.discordance / pooled)
            text += (f", on which a candidate that disagrees with the teacher on "
                     f"{resolve.discordance:.1%} of them is confirmed when its pooled loss is at "
                     f"least {margin:.2f} pp under the budget")
    return text + "."


def resolution(configs: list[Config]) -> tuple[int, float]:
    """(test samples per seed, the smallest accuracy difference one seed's split can detect)."""
    n = max((c.n_test for c in configs), default=0)
    observed = [c.against_teacher.discordance for c in configs
                if c.against_teacher is not None and c.role != "baseline"]
    discordance = statistics.median(observed) if observed else ASSUMED_DISCORDANCE
    return n, (100 * detectable_difference(n, discordance) if n else float("inf"))
