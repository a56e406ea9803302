"""Named run settings, as data: a preset fills in what the command line leaves unset."""

from __future__ import annotations

from typing import Any

from compress.analysis.configurations import DOCUMENT_DISTILL_PARAMS
from compress.models.teacher import DOCUMENT_RECIPE

DOCUMENT_DISTILL = "distill:" + ",".join(f"{k}={v}" for k, v in DOCUMENT_DISTILL_PARAMS.items())

PRESETS: dict[str, dict[str, Any]] = {
    # The source document's exact scenario: its plain 20-epoch teacher, its Dense-32 student,
    # 20 epochs at batch 32, alpha 0.5 and T 2 (on logits here), over 5 seeds instead of one draw.
    "document": {
        "dataset": "document",
        "teacher_recipe": DOCUMENT_RECIPE,
        "strategies": ("baseline", "quantize-int8", "prune-magnitude", DOCUMENT_DISTILL, "finetune"),
        "seeds": (0, 1, 2, 3, 4),
    },
    # Deep Compression (Han et al. 2016) beside each of its stages alone: prune, then cluster
    # (keeping the zeros), then int8, compared on gzip size.
    "deep-compression": {
        "strategies": ("baseline", "prune-magnitude", "cluster", "quantize-int8", "deep-compression"),
    },
}
