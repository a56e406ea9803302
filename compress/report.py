"""Reports from saved results only: never imports TensorFlow, so it runs anywhere.

``build_report(folder)`` reads ``results.jsonl`` (and ``run.json`` when present)
and writes ``report.md`` and ``accuracy_vs_size.png`` next to them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from compress.fileio import write_atomic
from compress.results import RESULTS_FILE, read_results

REPORT_FILE = "report.md"
PLOT_FILE = "accuracy_vs_size.png"
SIGNIFICANCE = 0.05
#: Speed ratios within this margin of 1 are reported as the same speed: a 1% gap can be
#: real (memory layout) yet meaningless, and a tight interval would otherwise call it "faster".
SAME_SPEED_MARGIN = 0.03


def _baseline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if r["strategy"] == "baseline" and r["status"] == "ok"), None)


def _kb(value: float | None) -> str:
    return "" if value is None else f"{value / 1024:,.1f}"


def _ratio(reference: float | None, value: float | None) -> str:
    if not reference or not value:
        return ""
    return f"{reference / value:.2f}×"


def speed_verdict(row: dict[str, Any]) -> str:
    """'faster' or 'slower' only when the paired 95% interval excludes 1 and the
    difference exceeds the same-speed margin."""
    ratio, low, high = row.get("speedup"), row.get("speedup_ci_low"), row.get("speedup_ci_high")
    if ratio is None or low is None or high is None:
        return ""
    if low <= 1 <= high:
        return "no significant difference"
    if abs(ratio - 1) < SAME_SPEED_MARGIN:
        return f"same speed (within {SAME_SPEED_MARGIN:.0%})"
    return "faster" if ratio > 1 else "slower"


def accuracy_verdict(row: dict[str, Any], baseline: dict[str, Any]) -> str:
    p = row.get("mcnemar_p")
    if p is None or row is baseline:
        return ""
    if p >= SIGNIFICANCE:
        return f"not significant (p={p:.2f})"
    side = "better" if row["accuracy"] > baseline["accuracy"] else "worse"
    return f"significantly {side} (p={p:.3f})"


def common_table(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One display row per result: sizes, latency and accuracy against the baseline."""
    base = _baseline(rows) or {}
    table = []
    for row in rows:
        if row["status"] != "ok":
            table.append({"Method": row["strategy"], "Family": row["family"],
                          "Status": f"{row['status']}: {row['reason']}"})
            continue
        latency = row.get("latency_us_p50")
        speed = ""
        if row.get("speedup") is not None and row is not base:
            speed = (f"{row['speedup']:.2f}× [{row['speedup_ci_low']:.2f}, "
                     f"{row['speedup_ci_high']:.2f}] {speed_verdict(row)}")
        delta = ""
        if base and row is not base:
            delta = f"{(row['accuracy'] - base['accuracy']) * 100:+.1f} pp, {accuracy_verdict(row, base)}"
        table.append({
            "Method": row["strategy"] + (" (control)" if row.get("control") else ""),
            "Family": row["family"],
            "Status": "ok",
            "Size KB": _kb(row["size_bytes"]),
            "× smaller": _ratio(base.get("size_bytes"), row["size_bytes"]),
            "gzip KB": _kb(row["size_gzip_bytes"]),
            "gzip × smaller": _ratio(base.get("size_gzip_bytes"), row["size_gzip_bytes"]),
            "Params (non-zero)": f"{row['params_count']:,} ({row['nonzero_params']:,})",
            "Latency p50 µs [95% CI]": "" if latency is None else
            f"{latency:.2f} [{row['latency_us_p50_ci_low']:.2f}, {row['latency_us_p50_ci_high']:.2f}]",
            "Speed-up vs teacher": speed,
            "Accuracy [95% CI]": f"{row['accuracy']:.3f} [{row['accuracy_ci_low']:.3f}, "
            f"{row['accuracy_ci_high']:.3f}]",
            "Δ accuracy vs teacher": delta,
            "Train s": "" if row.get("train_seconds") is None else f"{row['train_seconds']:.1f}",
        })
    return table


def markdown_table(records: Iterable[dict[str, str]]) -> str:
    records = list(records)
    columns: list[str] = []
    for record in records:
        columns += [c for c in record if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        cells = [str(record.get(c, "")).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Plain statements of what this run measured, including the unwelcome ones."""
    base = _baseline(rows)
    if base is None:
        return ["The baseline row did not finish, so nothing can be compared."]
    ok = {r["strategy"]: r for r in rows if r["status"] == "ok"}
    notes = []
    int8 = ok.get("quantize-int8")
    if int8 and int8.get("speedup") is not None:
        verdict = speed_verdict(int8)
        if verdict == "slower":
            notes.append(f"int8 is **slower** than float32 on this CPU: {int8['speedup']:.2f}× "
                         "the teacher's speed (int8 kernels and (de)quantize ops cost more "
                         "than they save on a model this small).")
        else:
            notes.append(f"int8 runs at {int8['speedup']:.2f}× the teacher's speed ({verdict}), "
                         f"at {base['size_bytes'] / int8['size_bytes']:.1f}× smaller.")
    pruned = ok.get("prune-magnitude")
    if pruned:
        notes.append(
            f"Magnitude pruning reached {pruned['sparsity']:.0%} zeros, yet raw size is "
            f"{base['size_bytes'] / pruned['size_bytes']:.2f}× smaller and speed "
            f"{(pruned.get('speedup') or 0):.2f}× ({speed_verdict(pruned)}); only gzip shrinks "
            f"({base['size_gzip_bytes'] / pruned['size_gzip_bytes']:.1f}×)."
        )
    distilled, scratch = ok.get("distill"), ok.get("student-scratch")
    if distilled and scratch:
        gain = (distilled["accuracy"] - scratch["accuracy"]) * 100
        if gain > 0:
            notes.append(f"Distillation beat the same student trained from scratch by "
                         f"{gain:.1f} pp on one seed: check it over several seeds.")
        else:
            notes.append(f"Distillation did **not** beat the same student trained from scratch "
                         f"({gain:+.1f} pp): the teacher added nothing here.")
    finetuned = ok.get("finetune")
    if finetuned:
        notes.append(f"Fine-tuning the teacher for a small budget changed accuracy by "
                     f"{(finetuned['accuracy'] - base['accuracy']) * 100:+.1f} pp "
                     f"({accuracy_verdict(finetuned, base)}): compare recovered rows with this.")
    unstable = [r["strategy"] for r in ok.values() if r.get("latency_warning")]
    if unstable:
        notes.append(f"Latency was unstable for {', '.join(unstable)}: treat those timings with care.")
    return notes


def plot_accuracy_vs_size(rows: list[dict[str, Any]], path: Path) -> None:
    ok = [r for r in rows if r["status"] == "ok"]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for row in ok:
        axes.scatter(row["size_bytes"] / 1024, row["accuracy"] * 100, s=40, zorder=3)
        axes.annotate(row["strategy"], (row["size_bytes"] / 1024, row["accuracy"] * 100),
                      textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("TFLite size (KB, log scale)")
    axes.set_ylabel("Test accuracy (%)")
    axes.set_title("Accuracy against size")
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    # A fixed creation date keeps the PNG byte-identical when rebuilt from the same results.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def _header(rows: list[dict[str, Any]], manifest: dict[str, Any] | None) -> list[str]:
    first = rows[0]
    env = first.get("env") or {}
    versions = env.get("versions") or {}
    lines = [
        f"# Compression report: {first['dataset']}",
        "",
        f"- **Dataset:** {first['dataset']}, seed {first['seed']}",
        f"- **Teacher:** `{first['teacher_architecture']}`"
        + (" (from cache)" if first.get("teacher_cached") else " (trained in this run)"),
    ]
    if manifest:
        teacher = manifest.get("teacher", {})
        data = manifest.get("dataset", {})
        lines.append(
            f"- **Teacher accuracy:** train {teacher.get('train_accuracy', 0):.3f}, "
            f"validation {teacher.get('val_accuracy', 0):.3f}; splits "
            f"{data.get('n_train')}/{data.get('n_val')}/{data.get('n_test')} (train/val/test)"
        )
        if manifest.get("config", {}).get("command"):
            lines.append(f"- **Command:** `{manifest['config']['command']}`")
        if not manifest.get("complete", True):
            lines.append("- **Incomplete run:** it stopped early; rows without latency were not timed.")
    lines += [
        f"- **Machine:** {env.get('cpu')}, {env.get('cores')} cores; inference threads "
        f"{env.get('inference_threads')}, Python {env.get('python')}",
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
        "",
    ]
    return lines


def render_markdown(rows: list[dict[str, Any]], manifest: dict[str, Any] | None = None) -> str:
    lines = _header(rows, manifest)
    lines += [
        "## Common table",
        "",
        "Every model, the teacher included, is scored as a TFLite flatbuffer in the LiteRT "
        "interpreter: batch-1 latency over interleaved rounds with a 95% interval, accuracy on "
        "the held-out test split with a Wilson interval, and an exact McNemar test against the "
        "teacher.",
        "",
        markdown_table(common_table(rows)),
        "",
        "## What this run shows",
        "",
        *[f"- {note}" for note in findings(rows)],
        "",
        "## Notes per row",
        "",
        *[f"- **{r['strategy']}** (`{r['spec']}`): {r['notes'] or r['reason'] or ''}" for r in rows],
        "",
        f"![Accuracy against size]({PLOT_FILE})",
        "",
    ]
    return "\n".join(lines)


def build_report(folder: Path | str) -> Path:
    """Write report.md and the accuracy-vs-size plot from a run folder's saved results."""
    folder = Path(folder)
    rows = read_results(folder / RESULTS_FILE)
    manifest_path = folder / "run.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    plot_accuracy_vs_size(rows, folder / PLOT_FILE)
    path = folder / REPORT_FILE
    write_atomic(path, render_markdown(rows, manifest))
    return path
