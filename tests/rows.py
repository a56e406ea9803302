"""Hand-made result rows for testing reports and recommendations without training anything."""

from __future__ import annotations

from typing import Any

from compress.results.rows import new_row

N_TEST = 1000


def correct_pattern(accuracy: float, n: int = N_TEST) -> str:
    """The first round(accuracy * n) test samples right: rows disagree only where accuracies do."""
    right = round(accuracy * n)
    return "1" * right + "0" * (n - right)


def fake_row(strategy: str, family: str = "quantization", *, size: int = 40_000,
             gzip: int | None = None, latency: float | None = 2.0, speedup: float = 1.0,
             accuracy: float = 0.9, seed: int = 0, run_id: str = "r", role: str = "technique",
             control_of: str | None = None, spec: str | None = None, n_test: int = N_TEST,
             **extra: Any) -> dict[str, Any]:
    rounds_faster = 30 if speedup > 1.03 else 0 if speedup < 0.97 else 15
    values = dict(
        run_id=run_id, strategy=strategy, spec=spec or strategy, label=spec or strategy,
        family=family, role=role, control_of=control_of, status="ok", params={},
        dataset="synthetic", seed=seed, majority_rate=0.34, teacher_architecture="mlp:128,64",
        teacher_cached=False, teacher_train_accuracy=1.0, teacher_val_accuracy=0.9,
        teacher_train_seconds=5.0, artifact=f"{strategy}.tflite", size_bytes=size,
        size_gzip_bytes=gzip or size, params_count=size // 4, nonzero_params=size // 4,
        sparsity=0.0, macs=1000, arithmetic="float32", latency_us_p50=latency,
        latency_us_p50_ci_low=latency and latency * 0.99, latency_us_p50_ci_high=latency and latency * 1.01,
        speedup=speedup, speedup_ci_low=speedup * 0.99, speedup_ci_high=speedup * 1.01,
        speedup_rounds=30, speedup_rounds_faster=rounds_faster,
        accuracy=accuracy, accuracy_ci_low=accuracy - 0.02, accuracy_ci_high=min(1.0, accuracy + 0.02),
        test_correct=correct_pattern(accuracy, n_test), train_seconds=1.0,
        env={"cpu": "Test CPU", "cores": 2, "inference_threads": 1, "python": "3.11", "versions": {}},
    )
    values.update(extra)
    return new_row(**values)


def spine_rows(seed: int = 0, run_id: str = "r") -> list[dict[str, Any]]:
    """A plausible run: int8 smaller and slower, pruning only gzip-smaller, distill = scratch."""
    return [
        fake_row("baseline", "baseline", role="baseline", seed=seed, run_id=run_id, train_seconds=0.0),
        fake_row("quantize-int8", size=12_000, speedup=0.8, latency=2.5, accuracy=0.895,
                 arithmetic="int8", seed=seed, run_id=run_id),
        fake_row("prune-magnitude", "pruning", gzip=12_000, accuracy=0.85,
                 sparsity=0.78, pruned_sparsity=0.8, seed=seed, run_id=run_id),
        fake_row("distill", "distillation", size=4_000, speedup=1.3, latency=1.5, accuracy=0.84,
                 macs=100, seed=seed, run_id=run_id),
        fake_row("student-scratch", "distillation", size=4_000, speedup=1.3, latency=1.5,
                 accuracy=0.85, macs=100, role="control", control_of="distill", seed=seed,
                 run_id=run_id),
        fake_row("finetune", "fine-tuning", accuracy=0.905, seed=seed, run_id=run_id),
    ]
