"""Pipelines: strategies applied one after another, measured as one row.

``prune-magnitude>cluster>quantize-int8`` prunes, clusters the pruned model,
then quantizes the result (Deep Compression, Han et al. 2016).  Each stage
receives the previous stage's model; a stage that emits TFLite must be last.
Later stages see the earlier stages' families in ``Context.history``, so
clustering and QAT can preserve sparsity and clusters instead of destroying them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from compress.common.errors import UserError
from compress.models.backend import seed_everything
from compress.strategies.base import Compressed, Context, Strategy, registry
from compress.strategies.spec import parse_spec


class Chain(Strategy):
    """Not registered: built from any spec that contains ``>``."""

    family = "pipeline"
    summary = "Stages applied in order; one row for the whole pipeline."

    def __init__(self, stages: tuple[str, ...] | list[str], *, alias: str | None = None) -> None:
        self.alias = alias  # a named chain (deep-compression) keeps its name in reports
        self.stages = tuple(stages)
        self._check(len(self.stages) >= 2,
                    "a chain needs at least two stages, e.g. prune-magnitude>quantize-int8")
        self.parts = [self._stage(text) for text in self.stages]
        for part in self.parts[:-1]:
            if part.produces_tflite:
                raise UserError(f"chain {'>'.join(self.stages)}: {part.name} produces a TFLite file, "
                                "so no stage can follow it; put it last")
        self.stages = tuple(part.spec() for part in self.parts)
        self.name = ">".join(part.name for part in self.parts)
        self.cost = sum(part.cost for part in self.parts)
        self.needs_trained_teacher = any(part.needs_trained_teacher for part in self.parts)

    @staticmethod
    def _stage(text: str, overrides: dict[str, Any] | None = None) -> Strategy:
        if not text.strip():
            raise UserError("a chain has an empty stage (two '>' in a row, or one at an end); "
                            "write e.g. prune-magnitude>quantize-int8")
        name, params = parse_spec(text)
        if name not in registry():
            raise UserError(f"unknown chain stage {name!r}; stages must be exact strategy names: "
                            f"{', '.join(registry())}")
        cls = registry()[name]
        shared = {k: v for k, v in (overrides or {}).items() if k in cls.param_names()}
        return cls.from_params(**{**shared, **params})

    @classmethod
    def from_spec(cls, spec: str, overrides: dict[str, Any] | None = None, *,
                  alias: str | None = None) -> Chain:
        return cls([cls._stage(stage, overrides).spec() for stage in spec.split(">")], alias=alias)

    @classmethod
    def from_params(cls, **raw: Any) -> Chain:
        stages = raw.get("stages")
        if set(raw) != {"stages"} or not isinstance(stages, (list, tuple)) or \
                not all(isinstance(s, str) for s in stages):
            raise UserError("a chain takes one parameter, stages: a list of stage specs")
        return cls(stages)

    def get_params(self) -> dict[str, Any]:
        return {"stages": list(self.stages)}

    def spec(self) -> str:
        return ">".join(self.stages)

    def budget(self) -> float | None:
        """The tightest budget a stage answers: each stage is certified against the model it
        takes, so the chain's rows need the evidence of its strictest stage."""
        budgets = [b for part in self.parts if (b := part.budget()) is not None]
        return min(budgets, default=None)

    def label(self) -> str:
        return self.alias or ">".join(part.label() for part in self.parts)

    def compress(self, ctx: Context) -> Compressed:
        """Each stage on the previous stage's model, each seeded on its own, so a leading stage
        loaded from ``ctx.stage_cache`` leaves the next exactly where training it would.  Every
        stage gets the chain's ``ctx.limits``: budgets planned for the teacher the chain was given,
        one share of the clock, and the first cut is the row's."""
        model, notes, cache = ctx.teacher, [], ctx.stage_cache
        for index, part in enumerate(self.parts):
            done = self.stages[: index + 1]
            last = index == len(self.parts) - 1
            cached = cache.load(done) if cache is not None and not last else None
            tflite = None
            if cached is None:
                seed_everything(ctx.seed + index)
                out = part.compress(dataclasses.replace(ctx, teacher=model, stage_cache=None))
                model, note, tflite = out.model, out.notes, out.tflite
                if cache is not None and not last and tflite is None:
                    cache.save(done, model, note)
            else:
                model, note = cached
            notes.append(f"{part.name}: {note}" if note else part.name)
            if tflite is not None:
                return Compressed(tflite=tflite, notes=" → ".join(notes))
            ctx = dataclasses.replace(ctx, history=(*ctx.history, part.family))
        return Compressed(model=model, notes=" → ".join(notes))

    def __repr__(self) -> str:
        return f"Chain({json.dumps(list(self.stages))})"
