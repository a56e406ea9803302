"""One seed's data and teacher, as a run, a sweep and a tune prepare them: loaded, trained or
taken from the cache, refused when weak, and described in run.json and in every row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from compress.common.errors import UserError, option
from compress.common.stats import above_rate
from compress.common.text import counted
from compress.data.builtin import Dataset, evidence_rows, load_dataset, load_shift
from compress.models.teacher import (
    Teacher,
    TeacherRecipe,
    get_teacher,
    load_teacher,
    pending_teacher,
    takes_token_ids,
)
from compress.orchestrate.config import RunConfig

#: Below this many epochs or validation rows, or above this majority share, a weak teacher's
#: message names it as a likely cause.
SHORT_TRAINING, SMALL_VALIDATION, DOMINANT_CLASS = 10, 100, 0.9


#: A teacher must beat always predicting the majority class by more than this (in points).
WEAK_TEACHER_MARGIN_PP = 2.0


@dataclass(frozen=True)
class Source:
    """One seed's data: what strategies are scored on, and what the teacher learns from."""

    dataset: Dataset
    teacher_data: Dataset  # the same dataset, or the source domain in a shift scenario
    preprocessing: str | None = None
    encoding: dict[str, Any] | None = None  # a table's fitted encoding (userdata.fitted_encoding)

    def for_selection(self) -> Source:
        """This seed's data with the validation split in the test split's place, to choose
        between configurations: the test split is out of reach until the choice is made."""
        training = self.dataset.training
        selection = Dataset(training, training.x_val, training.y_val)
        return Source(selection, selection, self.preprocessing, self.encoding)


def load_source(config: RunConfig, seed: int) -> Source:
    """The run's data for one seed (a built-in, a user's file, or a shift scenario), with the
    evidence rows its budgets need set aside (``with_evidence``)."""
    if config.scenario == "shift":
        source, target = load_shift(str(config.dataset), seed, config.target_train)
        return Source(target, source)
    if config.data is None:
        dataset = with_evidence(config, load_dataset(str(config.dataset), seed), seed)
        return Source(dataset, dataset)
    # pandas and scikit-learn are slow to import: only for a user's file (measured:
    # docs/benchmarks.md, "Figures behind design decisions")
    from compress.data.userdata import load_file

    teacher_ids = config.teacher is not None and takes_token_ids(config.teacher)
    if teacher_ids and config.data.suffix.lower() != ".npz":
        raise UserError(f"teacher {config.teacher.name} takes token ids from its own tokenizer, which "
                        f"numbers words differently from compress's; give the ids it was trained on as "
                        f"an .npz ({option('tokens', True)}), or train a teacher here on the texts")
    tokens = config.tokens or teacher_ids
    dataset, record = load_file(config.data, seed=seed, target=config.target, missing=config.missing,
                                image_size=config.image_size,
                                text=replace(config.text_options(), tokens=tokens))
    dataset = with_evidence(config, dataset, seed)
    return Source(dataset, dataset, record.summary(), getattr(record, "encoding", None))


def tightest_budget(config: RunConfig) -> float | None:
    """The smallest accuracy budget a strategy of the run answers itself, or None."""
    from compress.strategies import strategies_from_spec

    budgets = [b for spec in config.strategies for s in strategies_from_spec(spec)
               if (b := s.budget()) is not None]
    return min(budgets, default=None)


def with_evidence(config: RunConfig, dataset: Dataset, seed: int) -> Dataset:
    """The dataset with evidence rows set aside when the run asks an accuracy budget (as many
    as ``evidence_rows`` plans, or ``config.evidence_rows``); a run without one is unchanged."""
    if config.evidence_rows == 0:
        return dataset
    budget = tightest_budget(config)
    if budget is None and config.evidence_rows is None:
        return dataset
    training = dataset.training
    rows = config.evidence_rows or evidence_rows(budget or 0.0, len(training.y_train))
    return dataset.with_evidence(rows, seed)


def teacher_for(config: RunConfig, source: Source, seed: int, *, load: bool = True,
                deadline: float | None = None) -> Teacher:
    """The seed's teacher: the user's file, or the cached (else freshly trained) default.

    ``load=False``: a cached teacher's model stays on disk (see ``get_teacher``); a teacher
    trained here stops at ``deadline`` (``time.time()``; None: never).
    """
    if config.teacher is not None:
        return load_teacher(config.teacher, source.dataset, trust=config.trust_model,
                            use_cache=config.use_cache)
    return get_teacher(source.teacher_data, seed=seed, recipe=_recipe(config),
                       architecture=config.teacher_architecture, use_cache=config.use_cache,
                       load=load, deadline=deadline)


def _recipe(config: RunConfig) -> TeacherRecipe:
    return config.teacher_recipe.with_epochs(config.epochs)


def teacher_to_train(config: RunConfig, source: Source, seed: int) -> Teacher | None:
    """The pending record of the seed's teacher if ``teacher_for`` would train it (not the
    user's, not cached), else None."""
    if config.teacher is not None:
        return None
    return pending_teacher(source.teacher_data, seed=seed, recipe=_recipe(config),
                           architecture=config.teacher_architecture, use_cache=config.use_cache)


def majority_rate(y: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent class: the floor any teacher must clear."""
    return float(np.bincount(np.asarray(y, dtype=np.int64)).max() / len(y))


def weak_teacher(teacher: Teacher, dataset: Dataset) -> str | None:
    """Why the teacher is not clearly better than the majority class on validation, or None.

    Clearly better: more than 2 points above the majority-class rate, and above it by a
    one-sided exact binomial test at 0.05 (the validation split, never the test split).
    """
    if teacher.val_accuracy is None:
        return None
    y_val = dataset.training.y_val
    floor = majority_rate(y_val)
    n = len(y_val)
    clearly_above = above_rate(round(teacher.val_accuracy * n), n, floor) <= 0.05
    if teacher.val_accuracy - floor > WEAK_TEACHER_MARGIN_PP / 100 and clearly_above:
        return None
    return (f"the teacher scores {teacher.val_accuracy:.3f} on the validation split, not clearly above "
            f"the {floor:.3f} of always predicting the majority class; likely causes: "
            f"{', '.join(_weak_causes(teacher, n, floor))}")


def _weak_causes(teacher: Teacher, n: int, floor: float) -> list[str]:
    """What most often makes such a teacher weak: for the user's model, a mismatch with this data;
    for one trained here, the data and the training budget."""
    if teacher.architecture.startswith("user:"):
        return ["inputs scaled differently from training (e.g. 0-255 against 0-1)",
                "a different label order", "or a wrong output layer"]
    causes: list[str] = []
    if teacher.recipe.epochs < SHORT_TRAINING:
        causes.append(f"a short training ({counted(teacher.recipe.epochs, 'epoch')}; "
                      f"{option('epochs')} sets it)")
    if n < SMALL_VALIDATION:
        causes.append(f"a validation split of {n} rows, too few to show a difference")
    if floor > DOMINANT_CLASS:
        causes.append(f"one class holding {floor:.0%} of the rows, which leaves accuracy little room")
    causes.append(f"{'or ' if causes else ''}features that say little about the label")
    return causes


def check_teacher(config: RunConfig, seed: int, teacher: Teacher, dataset: Dataset,
                  weak: dict[int, str]) -> None:
    """Refuse a weak teacher (``weak_teacher``), or with --allow-weak-teacher record why in
    ``weak``."""
    reason = weak_teacher(teacher, dataset)
    if reason and not config.allow_weak_teacher:
        raise UserError(f"{reason}; fix the data or the teacher, or pass "
                        f"{option('allow_weak_teacher', True)}")
    if reason:
        weak[seed] = reason


def teacher_origin(teacher: Teacher) -> str:
    if teacher.from_cache:
        return "from the cache"
    if teacher.cut_short:
        return (f"trained in {teacher.train_seconds:.1f} s, stopped by the time budget after "
                f"{teacher.cut_short}")
    return f"trained in {teacher.train_seconds:.1f} s" if teacher.train_seconds else "loaded"


def teacher_record(teacher: Teacher) -> dict[str, Any]:
    """What run.json keeps about a seed's teacher."""
    return {
        "architecture": teacher.architecture, "recipe": asdict(teacher.recipe),
        "epochs_trained": teacher.epochs_trained, "from_cache": teacher.from_cache,
        "train_accuracy": teacher.train_accuracy, "val_accuracy": teacher.val_accuracy,
        "cache_key": teacher.cache_key, "budget_stopped": teacher.cut_short,
    }


def teacher_fields(teacher: Teacher) -> dict[str, Any]:
    """What a row says about its seed's teacher (unknown while a worker trains it)."""
    return {"teacher_architecture": teacher.architecture, "teacher_cached": teacher.from_cache,
            "teacher_train_accuracy": teacher.train_accuracy,
            "teacher_val_accuracy": teacher.val_accuracy,
            "teacher_train_seconds": teacher.train_seconds or None}
