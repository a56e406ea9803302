"""Distillation family: a small student learns from the teacher's soft targets.

The loss and the loop are ``strategies.students``' (structured pruning recovers through them
too); unlike the source document's code, the temperature divides the *logits* before the
softmax.

The defaults teach consistently (Beyer et al., 2022, "Knowledge distillation: a good teacher
is patient and consistent"): on mixup blends of the training rows, labelled by the teacher at
every step, the student learns half from the teacher's distribution at T=2 and half from the
blended labels (alpha=0.5), for 300 epochs at batch 64 without early stopping.
``benchmarks/distill_recipe.py`` chose them on four problems over three seeds, against
student-scratch-mixup, the same blends without the teacher (measured: docs/benchmarks.md,
"Re-chosen for issue 31: half the labels, on four problems").  The teacher's distribution alone
(alpha=0, function matching, the default before) did worse against it: a student that learns
only from its teacher cannot pass it, and a user's teacher is not always better than what mixup
alone teaches.  Hinton's mix with the teacher's logits computed once (T=4, alpha=0.5, the first
default) lost to training from scratch on a large table (measured: docs/benchmarks.md, "Re-run
for issue 18: early stopping for students, and 50,000 rows").

On large data the budget is planned (``Context.limits.plan``): batches grow and the optimizer
steps stop at ``max_steps`` (24,000).  Distillation is credited only for what it adds beyond
two controls trained with the identical student, loop, budget, batch order and seed:
``student-scratch`` (hard labels) and ``student-scratch-mixup`` (hard labels plus mixup, the
strongest standard recipe without a teacher).  Their parameters default to the ``distill``
row's, so the rows cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import numpy as np

from compress.common.certify import PairedLoss
from compress.common.fileio import write_atomic
from compress.models.architectures import (
    FINE_STUDENT_SHRINKS,
    build_model,
    default_teacher,
    derive_student,
    input_preprocessing,
    parse_architecture,
    preprocessing_note,
    student_candidates,
    student_ladder,
)
from compress.models.backend import keras, to_tflite
from compress.models.cost import forward_macs
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, Task, register
from compress.strategies.budget import Judge, certifier, validation_judge
from compress.strategies.students import MIXUP, train_student

DEFAULT_STUDENT = "auto"
TRANSFERS = ("none", "augment", "mixup")
#: Early stopping is off for students by default: stopping after a fifth of the planned epochs
#: without a better validation accuracy cut distillation short on digits (measured:
#: docs/benchmarks.md, "Re-run for issue 18: early stopping for students, and 50,000 rows"): the
#: soft targets go on improving the student after validation accuracy has levelled off.
PATIENCE = 0.0
#: ``max_drop``'s first round: every rung of the student ladder trains this share of the epochs
#: (and of ``max_steps``); then at most ``FULL_TRAININGS`` rungs, those that may still fit the
#: budget, train the rest (``Distill._climb``).  Successive halving's idea: a ladder of four
#: costs about two and a half full trainings, not four.
SCREEN_SHARE = 0.25
#: Under the run's folder: which student a ``max_drop`` ladder chose, for the controls of the
#: same ``distill``, which train that student without the teacher.
CHOICES_DIR = ".students"
#: Standard errors of a rung's screened loss forgiven when choosing what to train in full: the
#: screen decides only what to train next, never what is handed over (the evidence rows do), so
#: it may be lenient; with one error forgiven, digits' second rung (6,011 parameters, 2.8±1.2 pp
#: short after its screening epochs) was never trained, though a student that small ended
#: within 1 pp on the test split (issue 42).
SCREEN_FORGIVES = 2.0
#: Rungs of the ladder trained in full at most: two cost, with the screening, about two and a
#: half trainings of the widest student.
FULL_TRAININGS = 2
#: The ladder ``tune`` searches students from, as before issue 42: narrower than ``max_drop``'s,
#: which reaches half the teacher so that a student alone can meet a budget; tune meets it by
#: chaining a student with pruning, clustering and quantization.  With the wider ladder (and
#: ``factorize`` in its space) the digits search's best after 193 trials was 10× smaller, where
#: it had chosen 57× (docs/benchmarks.md, issue 42).
TUNE_LADDER: dict[str, Any] = {"first_share": 0.25, "step": 0.5, "most": 4}
#: The patient schedule (``epochs`` times this, the benchmarks' strongest recipe: docs/benchmarks.md,
#: "Re-chosen for issue 31: half the labels, on four problems"), given to the widest student
#: trained in full when no student is within the budget on validation after its ``epochs``.
PATIENT_FACTOR = 3
#: What a ``max_drop`` ladder costs, in trainings of its widest rung: what a time budget plans
#: (the screening and two full trainings, two and a half; the patient schedule, two more).
LADDER_COST = 4.5


def _macs(model: keras.Model) -> int:
    """Forward multiply-accumulates, read from the layers (``cost.forward_macs``); from the TFLite
    file only when the layers do not tell, since converting a costly teacher is slow (measured:
    docs/benchmarks.md, "A real-size image model through every strategy: MobileNetV2 at 96×96
    (issue 30)")."""
    counted = forward_macs(model)
    if counted:
        return counted
    from compress.models.flatbuffer import macs  # reads the TFLite schema: only when used

    return macs(to_tflite(model))


class _Student(Strategy):
    """Shared by ``distill`` and its controls: one way to build and train the student."""

    family = "distillation"

    def make_student(self, ctx: Context) -> tuple[keras.Model, str]:
        """The student and its spec: the one given, or one derived from the teacher's own
        topology (``auto``), which must be strictly smaller than the teacher in parameters and in
        MACs.  It starts with the teacher's input preprocessing (``input_preprocessing``), if any,
        as it sees the same input.  The spec is for the row's notes: which student ``auto`` chose."""
        data = ctx.data
        if self.student != DEFAULT_STUDENT:
            return self.build_student(self.student, ctx), self.student
        if ctx.teacher_architecture == default_teacher(data.input_shape, data.vocabulary):
            # the experiment's pair: several times smaller on both counts
            spec = derive_student(ctx.teacher, ctx.teacher_architecture, data.input_shape,
                                  vocabulary=data.vocabulary)
            return self.build_student(spec, ctx), spec
        teacher_macs = _macs(ctx.teacher)
        tried = []
        for spec in student_candidates(ctx.teacher, ctx.teacher_architecture, data.input_shape,
                                       vocabulary=data.vocabulary):
            student = self.build_student(spec, ctx)
            student_macs = _macs(student)
            if student.count_params() < ctx.teacher.count_params() and student_macs < teacher_macs:
                return student, spec
            tried.append(f"{spec} ({student.count_params():,} parameters, {student_macs:,} MACs)")
        raise Skip(f"no automatic student is smaller than the teacher ({ctx.teacher.count_params():,} "
                   f"parameters, {teacher_macs:,} MACs): tried {'; '.join(tried)}; give student=SPEC")

    def build_student(self, spec: str, ctx: Context) -> keras.Model:
        """A student of ``spec`` for this data, with the teacher's input preprocessing."""
        return build_model(spec, ctx.data.input_shape, ctx.data.n_classes, seed=ctx.seed,
                           name="student", preprocessing=input_preprocessing(ctx.teacher),
                           vocabulary=ctx.data.vocabulary)

    def _check_common(self) -> None:
        self._check_budget(self.epochs, self.lr)
        self._check_positive("batch_size", self.batch_size)
        self._check(self.max_steps is None or self.max_steps >= 1,
                    f"max_steps must be at least 1, got {self.max_steps}")
        self._check(self.patience is None or 0 <= self.patience <= 1,
                    f"patience must be a fraction of the epochs from 0 (no early stopping) to 1, "
                    f"got {self.patience}")
        if self.student not in (None, DEFAULT_STUDENT):
            parse_architecture(self.student)
        drop = self.max_drop
        self._check(drop is None or (math.isfinite(drop) and drop >= 0),
                    f"max_drop must be 0 or more percentage points, got {drop}")
        self._check(drop is None or self.student in (None, DEFAULT_STUDENT),
                    f"max_drop chooses the student from a ladder; drop student={self.student} or max_drop")


@register
class Distill(_Student):
    """The teacher's distribution taught to a student: the automatic one, one the user names, or
    with ``max_drop`` the smallest of a ladder derived from the teacher certified within that
    many points of it on the run's evidence rows (``common.certify``)."""

    name = "distill"
    summary = ("Knowledge distillation on logits (T^2-scaled KL): by default half the teacher's "
               "T=2 distribution, half the labels, on the same mixup blends.")
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 2}
    companions = ("student-scratch", "student-scratch-mixup")
    tunable: ClassVar[dict[str, Range | Choice] | None] = {
        "temperature": Choice((2.0, 1.0, 4.0, 8.0)), "alpha": Range(0.0, 0.8, step=0.1),
        "epochs": Choice((300, 900))}
    cost = 4.0

    @classmethod
    def search_space(cls, task: Task) -> dict[str, Range | Choice] | None:
        """The tunable settings plus the students of a ladder (the teacher's depth, at most a
        quarter of its parameters, then halving: ``TUNE_LADDER``), widest first, then students 4
        to 16 times narrower.  The widest rung comes first, so it is the student the search
        starts from, and the first chains grow from it."""
        ladder = student_ladder(task.teacher, task.teacher_architecture, task.input_shape, task.n_classes,
                                **TUNE_LADDER, vocabulary=task.vocabulary)
        narrower = student_candidates(task.teacher, task.teacher_architecture, task.input_shape,
                                      FINE_STUDENT_SHRINKS, vocabulary=task.vocabulary)
        students = tuple(dict.fromkeys([*(spec for spec, _ in ladder), *narrower]))
        return {**(cls.tunable or {}), "student": Choice(students)}

    def __init__(
        self,
        temperature: float = 2.0,
        alpha: float = 0.5,
        epochs: int = 300,
        lr: float = 1e-3,
        batch_size: int = 64,
        student: str = DEFAULT_STUDENT,
        transfer: str = "mixup",
        max_steps: int = 24_000,
        patience: float = PATIENCE,
        max_drop: float | None = None,
        features: float = 0.0,
    ) -> None:
        self.temperature = temperature
        self.alpha = alpha
        self.epochs = epochs
        self.max_steps = max_steps
        self.lr = lr
        self.batch_size = batch_size
        self.student = student
        self.transfer = transfer
        self.patience = patience
        self.max_drop = max_drop
        self.features = features
        if max_drop is not None:  # the ladder: about two and a half trainings of its widest rung
            self.cost = LADDER_COST * Distill.cost
        self._check_positive("temperature", temperature)
        self._check(0 <= alpha <= 1, f"alpha must be between 0 and 1, got {alpha}")
        self._check(transfer in TRANSFERS,
                    f"transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
        self._check(math.isfinite(features) and features >= 0,
                    f"features must be a weight of 0 (off) or more, got {features}")
        self._check(features == 0 or (transfer != "none" and alpha < 1),
                    "features need the teacher run on every step: give transfer=mixup or augment and "
                    "alpha below 1")
        self._check_common()

    def compress(self, ctx: Context) -> Compressed:
        how = ""
        if self.max_drop is None:
            student, spec = self.make_student(ctx)
            trained = self._train(student, ctx, self.epochs, self.max_steps)
        else:
            student, spec, trained, how = self._climb(ctx)
        return Compressed(
            model=student,
            notes=f"{how}Student {spec} ({student.count_params():,} params), {trained} on soft targets "
            f"(T={self.temperature:g}, alpha={self.alpha:g}, transfer={self.transfer})."
            f"{preprocessing_note(ctx.teacher)}",
        )

    def _train(self, student: keras.Model, ctx: Context, epochs: int, max_steps: int | None) -> str:
        """Under ``max_drop`` a rung trains in two calls, the second with a new optimizer and its
        batches drawn again from the seed: not the one continuous run its controls get."""
        return train_student(student, ctx, teacher=ctx.teacher, alpha=self.alpha,
                             temperature=self.temperature, epochs=epochs, max_steps=max_steps,
                             lr=self.lr, batch_size=self.batch_size, patience=self.patience,
                             transfer=self.transfer, features=self.features)

    def chosen_student(self, ctx: Context) -> tuple[str, int]:
        """The student ``max_drop``'s ladder chooses for this teacher, data and seed, and how
        many times ``epochs`` it trained (``PATIENT_FACTOR`` on the patient schedule, else 1), so
        a control trains it as long: what an earlier row of the run recorded, or the ladder
        climbed now (the same seeds choose the same).  Raises Skip, with the ladder's reason,
        when no rung fits."""
        choice = self._choice_path(ctx)
        if not choice.exists():
            self._climb(ctx)
        recorded = json.loads(choice.read_text(encoding="utf-8"))
        if recorded["student"] is None:
            raise Skip(recorded["reason"])
        return str(recorded["student"]), int(recorded.get("schedule", 1))

    def _climb(self, ctx: Context) -> tuple[keras.Model, str, str, str]:
        """Every rung of the ladder (widest first) trains ``SCREEN_SHARE`` of the epochs, judged
        on validation; at most ``FULL_TRAININGS`` promising rungs train the rest (``_train_fully``),
        and when none of them is within the budget on validation the widest trained goes on with
        the patient schedule (``PATIENT_FACTOR`` times the epochs).  Those trained in full are
        then certified in a fixed sequence, widest first, on the evidence rows
        (``common.certify``): the smallest certified is kept."""
        assert self.max_drop is not None
        rungs = student_ladder(ctx.teacher, ctx.teacher_architecture, ctx.data.input_shape,
                               ctx.data.n_classes, vocabulary=ctx.data.vocabulary)
        if not rungs:
            self._refuse(ctx, f"no student derived from the teacher has at most half of its "
                              f"{ctx.teacher.count_params():,} parameters; give student=SPEC, not max_drop")
        screen_of = validation_judge(ctx)
        screen = max(1, math.ceil(self.epochs * SCREEN_SHARE))
        screen_steps = None if self.max_steps is None else max(1, math.ceil(self.max_steps * SCREEN_SHARE))
        screened, screening = [], ""
        for spec, params in rungs:
            student = self.build_student(spec, ctx)
            screening = self._train(student, ctx, screen, screen_steps)  # the same plan for every rung
            screened.append(_Rung(spec, params, student, screen_of(student), screening))
            if ctx.limits.out_of_time():
                break
        tried = [f"{r.spec} ({r.params:,}) {r.screened} pp after {screening}" for r in screened]
        trained = self._train_fully(screened, ctx, screen, screen_of, tried)
        budget = self.max_drop
        if not trained and ctx.limits.out_of_time():  # not recorded: another run with more time may find one
            ctx.limits.record_cut(f"the ladder of students ({'; '.join(tried)})")
            raise Skip(f"the time budget ran out before any student of the ladder was trained in full: "
                       f"{'; '.join(tried)}")
        sequence, judge = certifier(ctx, budget)
        kept = None
        for rung in sorted(trained, key=lambda r: -r.params):
            if not sequence.test(rung.spec, judge(rung.student)):
                break
            kept = rung
        screens = f"Screened on validation: {'; '.join(tried)}. "
        if kept is None:
            self._refuse(ctx, f"no student of the ladder meets max_drop={budget:g} pp. {screens}"
                              f"{sequence.describe()}")
        self._record(ctx, {"student": kept.spec, "schedule": PATIENT_FACTOR if kept.patient else 1})
        how = f"max_drop={budget:g}: kept {kept.spec}, the smallest student that meets it. {screens}"
        return kept.student, kept.spec, kept.trained, f"{how}{sequence.describe()} "

    def _train_fully(self, screened: list[_Rung], ctx: Context, screen: int, screen_of: Judge,
                     tried: list[str]) -> list[_Rung]:
        """At most ``FULL_TRAININGS`` rungs trained the rest of the epochs: first the smallest
        whose screened loss, less ``SCREEN_FORGIVES`` standard errors and less what the rest of
        training won back on a rung trained before, is within the budget (the widest when none is); after one
        within the budget on validation only smaller rungs are tried, after one outside it only
        larger ones (a narrower student does not win back what a wider one lost).  None within:
        the widest trained goes on for the patient schedule.  Validation decides all of it."""
        budget, won_back = float(self.max_drop or 0.0), 0.0
        rest_steps = None if self.max_steps is None else \
            max(1, self.max_steps - math.ceil(self.max_steps * SCREEN_SHARE))
        open_rungs, trained = screened[::-1], []  # the smallest first
        for _ in range(FULL_TRAININGS):
            promising = [r for r in open_rungs
                         if r.screened.pp - won_back - SCREEN_FORGIVES * r.screened.error_pp <= budget]
            if not promising and not trained and screened[0] in open_rungs:
                promising = [screened[0]]
            if not promising or ctx.limits.out_of_time():
                break
            rung = promising[0]
            if self.epochs > screen:
                rung.trained += ", then " + self._train(rung.student, ctx, self.epochs - screen, rest_steps)
            rung.final = screen_of(rung.student)
            tried.append(f"{rung.spec} {rung.final} pp after {rung.trained}")
            trained.append(rung)
            won_back = max(won_back, rung.screened.pp - rung.final.pp)
            within = rung.final.within(budget)
            open_rungs = [r for r in open_rungs
                          if (r.params < rung.params if within else r.params > rung.params)]
        fits = any(r.final is not None and r.final.within(budget) for r in trained)
        if trained and not fits and not ctx.limits.out_of_time():
            widest = max(trained, key=lambda r: r.params)
            more = self.epochs * (PATIENT_FACTOR - 1)
            steps = None if self.max_steps is None else self.max_steps * (PATIENT_FACTOR - 1)
            widest.trained += ", then (patient) " + self._train(widest.student, ctx, more, steps)
            widest.patient = True
            widest.final = screen_of(widest.student)
            tried.append(f"{widest.spec} {widest.final} pp after {widest.trained}")
        return trained

    def _refuse(self, ctx: Context, reason: str) -> NoReturn:
        self._record(ctx, {"student": None, "reason": reason})
        raise Skip(reason)

    def _record(self, ctx: Context, choice: dict[str, Any]) -> None:
        path = self._choice_path(ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(choice))

    def _choice_path(self, ctx: Context) -> Path:
        """Keyed by what decides the choice within a run: this recipe, the seed, the teacher's
        weights, the training and the validation rows."""
        digest = hashlib.sha256(f"{self.spec()}|{ctx.seed}".encode())
        data = ctx.data
        for array in (*ctx.teacher.get_weights(), data.x_train, data.y_train, data.x_val, data.y_val):
            digest.update(np.ascontiguousarray(array).tobytes())
        return ctx.workdir / CHOICES_DIR / f"{digest.hexdigest()[:24]}.json"


@dataclass
class _Rung:
    """A student of the ladder: its spec, size, the model, its loss on validation after the
    screening epochs, what it was trained, and its loss on validation once trained in full."""

    spec: str
    params: int
    student: keras.Model
    screened: PairedLoss
    trained: str
    final: PairedLoss | None = None
    patient: bool = False  # trained on the patient schedule


class _Control(_Student):
    """A scratch student whose unset parameters are taken from the ``distill`` it controls.

    It copies the distill's whole recipe (``temperature``, ``alpha``, ``transfer``,
    ``features``, ``max_drop``), although it trains without the teacher, so that under ``max_drop`` it trains
    the student that distill's ladder chose: recorded by the distill's row, or found again by
    the same ladder when this row runs first.
    """

    role = "control"
    control_of = "distill"
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 2}
    #: The teacher's topology picks the student; no trained weight is used (a fitted input
    #: preprocessing is copied, but only a user's teacher, never trained in a worker, has one).
    #: Under ``max_drop`` the trained teacher chooses the student: this row waits for it, and
    #: for the distill's row, which records the choice.
    needs_trained_teacher = False
    mixup = 0.0

    def __init__(
        self, epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
        student: str | None = None, max_steps: int | None = None, patience: float | None = None,
        temperature: float | None = None, alpha: float | None = None, transfer: str | None = None,
        max_drop: float | None = None, features: float | None = None,
    ) -> None:
        self.epochs = epochs
        self.max_steps = max_steps
        self.patience = patience
        self.lr = lr
        self.batch_size = batch_size
        self.student = student
        self.temperature = temperature
        self.alpha = alpha
        self.transfer = transfer
        self.max_drop = max_drop
        self.features = features
        self.needs_trained_teacher = self.after_technique = max_drop is not None
        self._check_common()

    def compress(self, ctx: Context) -> Compressed:
        distill = Distill(**{key: value for key, value in self.get_params().items() if value is not None})
        resolved = self.paired_with(distill)
        schedule = 1
        if distill.max_drop is None:
            student, spec = resolved.make_student(ctx)
        else:
            spec, schedule = distill.chosen_student(ctx)
            student = distill.build_student(spec, ctx)
        max_steps = None if resolved.max_steps is None else resolved.max_steps * schedule
        trained = train_student(student, ctx, teacher=None, alpha=1.0, temperature=1.0,
                                epochs=resolved.epochs * schedule, max_steps=max_steps, lr=resolved.lr,
                                batch_size=resolved.batch_size, patience=resolved.patience,
                                mixup=self.mixup)
        return Compressed(model=student,
                          notes=f"{self.notes} Student {spec} ({student.count_params():,} params), "
                                f"trained {trained}.{preprocessing_note(ctx.teacher)}")


@register
class StudentScratch(_Control):
    name = "student-scratch"
    summary = "Control for distill: the same student, loop and budget, hard labels only."
    notes = "Same student, optimizer, epochs, batches and seed as distill, without the teacher."


@register
class StudentScratchMixup(_Control):
    name = "student-scratch-mixup"
    summary = "Control for distill: the same student and budget with mixup 0.2, no teacher."
    notes = ("Same as student-scratch plus mixup (Beta 0.2): the strongest standard recipe "
             "without a teacher.")
    mixup = MIXUP
