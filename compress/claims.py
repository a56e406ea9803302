"""The source document's claims, checked against this run's measurements.

The claims themselves are data (``claims.json``); each names a check here.
A check looks at the technique's rows (controls excluded), averaged over
seeds per spec, and returns a verdict with the numbers behind it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from compress.analysis import (
    Compared,
    accuracy_verdict,
    by_spec,
    group_key,
    label,
    mean_std,
    speed_verdict,
)

CONFIRMED, PARTLY, REFUTED, NOT_OBSERVED, NOT_MEASURED = (
    "confirmed", "partly", "refuted", "not observed here", "not measured",
)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    measured: str


def load_claims() -> dict[str, Any]:
    return json.loads(resources.files("compress").joinpath("claims.json").read_text())


def _specs(items: list[Compared]) -> list[tuple[str, list[Compared]]]:
    return [(group[0].name, group) for group in by_spec(items).values()]


def _mean(group: list[Compared], value: Callable[[Compared], float]) -> float:
    return mean_std([value(item) for item in group])[0]


def check_size(items: list[Compared]) -> Verdict:
    parts, best = [], 0.0
    for name, group in _specs(items):
        raw, gz = _mean(group, lambda i: i.size_factor), _mean(group, lambda i: i.gzip_factor)
        best = max(best, raw)
        extra = f" (gzip {gz:.1f}×)" if abs(gz - raw) > 0.25 * raw else ""
        parts.append(f"{name} {raw:.2f}× smaller{extra}")
    verdict = CONFIRMED if best >= 2 else PARTLY if best >= 1.1 else REFUTED
    if verdict == REFUTED and "gzip" in " ".join(parts):
        verdict = PARTLY  # only the compressed download shrinks
    return Verdict(verdict, "; ".join(parts))


def check_compute(items: list[Compared]) -> Verdict:
    """Fewer multiply-accumulates, or the same ones in cheaper integer arithmetic."""
    parts, reduced = [], False
    for name, group in _specs(items):
        row, base = group[0].row, group[0].base
        if not row.get("macs") or not base.get("macs"):
            continue
        factor = base["macs"] / row["macs"]
        arithmetic = row.get("arithmetic") or "unknown"
        reduced |= factor >= 1.5 or arithmetic != base.get("arithmetic")
        parts.append(f"{name} {row['macs']:,} MACs ({factor:.1f}× fewer), {arithmetic} arithmetic")
    if not parts:
        return Verdict(NOT_MEASURED, "no MAC counts")
    return Verdict(CONFIRMED if reduced else REFUTED, "; ".join(parts))


def check_speed(items: list[Compared]) -> Verdict:
    parts, verdicts = [], []
    for name, group in _specs(items):
        if group[0].row.get("speedup") is None:
            continue
        ratio = _mean(group, lambda i: i.row["speedup"])
        seed_verdicts = [speed_verdict(i.row) for i in group]
        verdict = max(set(seed_verdicts), key=seed_verdicts.count)
        verdicts.append(verdict)
        parts.append(f"{name} {ratio:.2f}× ({verdict})")
    if not parts:
        return Verdict(NOT_MEASURED, "no latency measured")
    faster = sum(v == "faster" for v in verdicts)
    verdict = CONFIRMED if faster == len(verdicts) else REFUTED if faster == 0 else PARTLY
    return Verdict(verdict, "; ".join(parts))


#: Accuracy within this many points of the teacher counts as "maintained".
KEPT_WITHIN_PP = 1.0


def _accuracy_parts(items: list[Compared]) -> tuple[list[str], int, int]:
    """Per spec: mean change, and whether it is a real drop (over 1 pp and significant on a seed)."""
    parts, dropped, total = [], 0, 0
    for name, group in _specs(items):
        delta = _mean(group, lambda i: i.delta_pp)
        significant = sum(i.accuracy_significant and i.delta_pp < 0 for i in group)
        dropped += delta < -KEPT_WITHIN_PP and significant > 0
        total += 1
        detail = accuracy_verdict(group[0]) if len(group) == 1 else (
            f"significantly worse on {significant} of {len(group)} seeds")
        parts.append(f"{name} {delta:+.1f} pp, {detail}")
    return parts, dropped, total


def check_accuracy_drop(items: list[Compared]) -> Verdict:
    """'May lead to degradation' is confirmed by a drop over 1 pp that is significant on a seed."""
    parts, dropped, _ = _accuracy_parts(items)
    return Verdict(CONFIRMED if dropped else NOT_OBSERVED, "; ".join(parts))


def check_accuracy_kept(items: list[Compared]) -> Verdict:
    parts, dropped, total = _accuracy_parts(items)
    verdict = REFUTED if dropped == total else PARTLY if dropped else CONFIRMED
    return Verdict(verdict, "; ".join(parts))


def check_training(items: list[Compared]) -> Verdict:
    parts = [f"{name} {_mean(group, lambda i: i.row['train_seconds'] or 0.0):.1f} s of training"
             for name, group in _specs(items)]
    return Verdict(CONFIRMED, "; ".join(parts))


def check_saves_time(items: list[Compared], controls: list[Compared]) -> Verdict:
    """Against retraining from scratch when the run has that control, else the teacher's time."""
    scratch = {group_key(c.row): c.row["train_seconds"] or 0.0 for c in controls
               if c.name == "retrain-scratch"}
    parts, saved = [], 0
    for _, group in _specs(items):
        seconds = _mean(group, lambda i: i.row["train_seconds"] or 0.0)
        if all(group_key(i.row) in scratch for i in group):
            other, what = mean_std([scratch[group_key(i.row)] for i in group])[0], "from scratch"
        else:
            other = _mean(group, lambda i: i.row.get("teacher_train_seconds") or 0.0)
            what = "to train the teacher"
        if not other:
            continue
        saved += seconds < other
        parts.append(f"{label(group[0].row, [i.row for i in items])} {seconds:.2f} s against "
                     f"{other:.2f} s {what}")
    if not parts:
        return Verdict(NOT_MEASURED, "teacher training time unknown")
    return Verdict(CONFIRMED if saved == len(parts) else REFUTED, "; ".join(parts))


def check_adapts(items: list[Compared], controls: list[Compared]) -> Verdict:
    """On a shifted target: better than the teacher zero-shot, and than training from scratch?"""
    shifted = items  # evaluate_claims passes only shift-scenario rows to this check
    scratch = {group_key(c.row): c.row for c in controls if c.name == "retrain-scratch"}
    parts, outcomes = [], []
    for _, group in _specs(shifted):
        gain = _mean(group, lambda i: i.delta_pp)
        over = [(i.row["accuracy"] - scratch[group_key(i.row)]["accuracy"]) * 100
                for i in group if group_key(i.row) in scratch]
        beats_scratch = bool(over) and mean_std(over)[0] > 0
        outcomes.append((gain > 0 and any(i.accuracy_significant for i in group), beats_scratch))
        versus = f", {mean_std(over)[0]:+.1f} pp against retrain-scratch" if over else ""
        parts.append(f"{label(group[0].row, [i.row for i in shifted])} {gain:+.1f} pp over the "
                     f"zero-shot teacher{versus}")
    if any(adapted and beaten for adapted, beaten in outcomes):
        verdict = CONFIRMED
    elif any(adapted for adapted, _ in outcomes):
        verdict = PARTLY  # it adapts, but training from scratch does as well
    else:
        verdict = REFUTED
    return Verdict(verdict, "; ".join(parts))


def check_knowledge_transfer(items: list[Compared], controls: list[Compared]) -> Verdict:
    """Distillation is credited only for beating the same student trained without the teacher."""
    scratch = {(c.row["run_id"], c.row["seed"]): c for c in controls if c.name == "student-scratch"}
    parts, wins, pairs = [], 0, 0
    for name, group in _specs(items):
        gains = [(i.row["accuracy"] - scratch[k].row["accuracy"]) * 100
                 for i in group if (k := (i.row["run_id"], i.row["seed"])) in scratch]
        if not gains:
            continue
        pairs += len(gains)
        wins += sum(g > 0 for g in gains)
        mean, std = mean_std(gains)
        spread = f" ± {std:.1f}" if len(gains) > 1 else ""
        parts.append(f"{name} {mean:+.1f}{spread} pp against student-scratch, "
                     f"wins {sum(g > 0 for g in gains)} of {len(gains)} seeds")
    if not pairs:
        return Verdict(NOT_MEASURED, "run student-scratch beside distill to test this")
    verdict = CONFIRMED if wins == pairs else REFUTED if wins <= pairs / 2 else PARTLY
    return Verdict(verdict, "; ".join(parts))


CHECKS: dict[str, Callable[..., Verdict]] = {
    "size": check_size,
    "compute": check_compute,
    "speed": check_speed,
    "accuracy_drop": check_accuracy_drop,
    "accuracy_kept": check_accuracy_kept,
    "training": check_training,
}
#: Checks that also need the family's control rows.
CONTROL_CHECKS: dict[str, Callable[..., Verdict]] = {
    "knowledge_transfer": check_knowledge_transfer,
    "adapts": check_adapts,
    "saves_time": check_saves_time,
}


def evaluate_claims(items: list[Compared]) -> list[dict[str, str]]:
    """One record per claim: technique, the document's words, what was measured, verdict."""
    data = load_claims()
    names = {t["family"]: t["technique"] for t in data["techniques"]}
    records, absent = [], set()
    for claim in data["claims"]:
        scenarios = claim.get("scenarios", ["standard"])
        family = [i for i in items if i.row["family"] == claim["family"]
                  and (i.row.get("scenario") or "standard") in scenarios]
        technique = [i for i in family if not i.row.get("control")]
        if not technique and any(i.row["family"] == claim["family"] for i in items):
            result = Verdict(NOT_MEASURED, f"needs a {' or '.join(scenarios)}-scenario run")
        elif not technique:
            if claim["family"] not in absent:  # one line per technique that did not run
                absent.add(claim["family"])
                records.append({"Technique": names[claim["family"]], "Document says": "(all claims)",
                                "Measured here": f"no {claim['family']} strategy in this run",
                                "Verdict": f"**{NOT_MEASURED}**"})
            continue
        elif claim["check"] in CONTROL_CHECKS:
            controls = [i for i in family if i.row.get("control")]
            result = CONTROL_CHECKS[claim["check"]](technique, controls)
        else:
            result = CHECKS[claim["check"]](technique)
        records.append({
            "Technique": names[claim["family"]],
            "Document says": f"{claim['claim']} ({claim['column'].lower()})",
            "Measured here": result.measured,
            "Verdict": f"**{result.verdict}**",
        })
    return records
