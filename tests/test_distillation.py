from __future__ import annotations

import numpy as np
import pytest

from compress.models.backend import tf
from compress.models.flatbuffer import TFLiteModel
from compress.strategies.apply import apply_strategy
from compress.strategies.distillation import Distill, StudentScratch, StudentScratchMixup
from compress.strategies.students import kd_loss
from compress.strategies.teaching import as_logits


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_kd_loss_matches_a_hand_computation():
    student = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=np.float32)
    teacher = np.array([[3.0, 1.0, -2.0], [-1.0, 2.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 2])
    alpha, t = 0.3, 4.0
    hard = -np.mean(np.log(_softmax(student)[np.arange(2), labels]))
    p_teacher, p_student = _softmax(teacher / t), _softmax(student / t)
    # KL(teacher || student): the teacher's distribution is the target.
    kl = np.mean(np.sum(p_teacher * np.log(p_teacher / p_student), axis=1))
    expected = alpha * hard + (1 - alpha) * t**2 * kl
    got = kd_loss(tf.constant(labels), tf.constant(student), tf.constant(teacher), alpha=alpha, temperature=t)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_kd_loss_temperature_acts_on_logits_not_probabilities():
    # Shifting all logits by a constant leaves softmax(logits / T) unchanged, so the loss too;
    # the document's bug (softmax of probabilities / T) would not have this property.
    student = tf.constant([[1.0, 2.0, 3.0]])
    teacher = np.array([[0.5, 0.1, 2.0]], dtype=np.float32)
    a = kd_loss(tf.constant([2]), student, tf.constant(teacher), alpha=0.0, temperature=2.0)
    b = kd_loss(tf.constant([2]), student, tf.constant(teacher + 7.0), alpha=0.0, temperature=2.0)
    assert float(a) == pytest.approx(float(b), abs=1e-6)


@pytest.mark.parametrize(("transfer", "control"), [("none", StudentScratch), ("mixup", StudentScratchMixup)])
def test_alpha_one_distillation_equals_its_control(tiny, tmp_path, transfer, control):
    """Without soft targets distillation is its control: on the labels alone, or (the default
    transfer) on the same mixup blends."""
    data, teacher, architecture = tiny
    results = [
        apply_strategy(strategy, teacher, architecture, data, seed=3, workdir=tmp_path)
        for strategy in (Distill(alpha=1.0, epochs=2, transfer=transfer), control(epochs=2))
    ]
    distilled, scratch = (TFLiteModel(r.flatbuffer).predict(data.x_val) for r in results)
    assert np.array_equal(distilled, scratch)


def test_controls_copy_the_distill_settings_of_their_run():
    from compress.orchestrate.plan import plan_steps

    steps = plan_steps(["distill:epochs=7,lr=0.01,student=mlp:16,patience=0.3"])
    by_name = {s.strategy.name: s.strategy for s in steps}
    assert list(by_name) == ["baseline", "distill", "student-scratch", "student-scratch-mixup"]
    for control in ("student-scratch", "student-scratch-mixup"):
        params = by_name[control].get_params()
        assert params == {"epochs": 7, "lr": 0.01, "batch_size": 64, "student": "mlp:16",
                          "max_steps": 24_000, "patience": 0.3, "temperature": 2.0, "alpha": 0.5,
                          "transfer": "mixup", "max_drop": None, "features": 0.0}


def test_a_teacher_that_outputs_probabilities_is_read_as_logits():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=np.float32)
    recovered = as_logits(_softmax(logits))
    np.testing.assert_allclose(_softmax(recovered), _softmax(logits), atol=1e-5)
    np.testing.assert_array_equal(as_logits(logits), logits)  # logits pass through


@pytest.mark.parametrize("transfer", ["augment", "mixup"])
def test_transfer_modes_train_a_student(tiny, tmp_path, transfer):
    data, teacher, architecture = tiny
    artifact = apply_strategy(Distill(epochs=1, transfer=transfer), teacher, architecture, data,
                              seed=0, workdir=tmp_path)
    predictions = TFLiteModel(artifact.flatbuffer).predict(data.x_val)
    assert np.all(np.isfinite(predictions)) and f"transfer={transfer}" in artifact.notes


@pytest.mark.parametrize("architecture_name", [None, "user:teacher.keras"])
def test_the_notes_name_the_student_auto_chose_in_distill_and_its_controls(tiny, tmp_path, architecture_name):
    from compress.models.architectures import build_model, derive_student

    data, teacher, architecture = tiny
    architecture = architecture_name or architecture
    expected = derive_student(teacher, architecture, data.input_shape)
    for strategy in (Distill(epochs=1), StudentScratch(epochs=1)):
        artifact = apply_strategy(strategy, teacher, architecture, data, seed=0, workdir=tmp_path)
        params = f"{build_model(expected, data.input_shape, data.n_classes, seed=0).count_params():,}"
        assert f"Student {expected} ({params} params)" in artifact.notes


def test_mixup_control_differs_from_plain_scratch(tiny, tmp_path):
    data, teacher, architecture = tiny
    plain, mixed = (TFLiteModel(apply_strategy(s, teacher, architecture, data, seed=0,
                                               workdir=tmp_path).flatbuffer).predict(data.x_val)
                    for s in (StudentScratch(epochs=2), StudentScratchMixup(epochs=2)))
    assert not np.array_equal(plain, mixed)


@pytest.mark.parametrize("transfer", ["none", "mixup"])
def test_a_softmax_teacher_distills_as_its_logits_would(tiny, tmp_path, transfer):
    """The same teacher with a softmax on top: the temperature must act on its logits whether
    they are computed once or per step (softmax(p / 2) of probabilities is near uniform)."""
    from compress.models.backend import keras

    data, teacher, architecture = tiny
    probabilities = keras.Model(teacher.input, keras.layers.Softmax()(teacher.output))
    distill = Distill(epochs=2, transfer=transfer, temperature=2.0, alpha=0.5)
    flatbuffers = [apply_strategy(distill, model, architecture, data, seed=3, workdir=tmp_path).flatbuffer
                   for model in (teacher, probabilities)]
    from_logits, from_probabilities = (TFLiteModel(f).predict(data.x_val) for f in flatbuffers)
    np.testing.assert_allclose(from_probabilities, from_logits, atol=1e-3)


@pytest.mark.parametrize(("architecture", "shape"), [
    ("mlp:128,64", (20,)), ("cnn:32,64:128", (8, 8, 1)), ("cnn1d:32,64,64:64", (64, 1)),
    ("dsres:16,32", (32, 32, 3))])
def test_the_ladder_is_derived_from_the_teacher_and_narrows_at_each_rung(architecture, shape):
    """Each rung has at most half the teacher's parameters (a quarter left 1 pp out of reach on
    users' teachers), then at most 0.6 of the rung before; students keep the teacher's kind,
    except that a globally pooling image teacher
    gets globally pooling students (a Flatten head outweighs it at any width)."""
    from compress.models.architectures import build_model, parse_architecture, student_ladder

    teacher = build_model(architecture, shape, 10, seed=0)
    rungs = student_ladder(teacher, architecture, shape, 10)
    assert len(rungs) >= 2
    limits = [teacher.count_params() / 2, *(params * 0.6 for _, params in rungs)]
    for (spec, params), limit in zip(rungs, limits, strict=False):
        assert params <= limit
        assert params == build_model(spec, shape, 10, seed=0).count_params()
        assert parse_architecture(spec).kind == parse_architecture(architecture).kind


class _LadderStandIn:
    """Training that only counts epochs, and validation answers that lose ``screened[spec]`` of
    100,000 rows while a student has trained fewer than ``epochs``, ``loss[spec]`` after."""

    def __init__(self, monkeypatch, data, teacher, architecture, epochs):
        import compress.strategies.budget as budget
        import compress.strategies.distillation as distillation
        from compress.models.architectures import student_ladder

        ladder = student_ladder(teacher, architecture, data.input_shape, data.n_classes)
        self.rungs = [spec for spec, _ in ladder]
        spec_of = {params: spec for spec, params in ladder}
        self.loss: dict[str, float] = {}
        self.screened: dict[str, float] = {}
        self.patient: dict[str, float] = {}  # after the patient schedule, where it differs
        trained: dict[int, int] = {}

        def train(model, ctx, *, epochs, **kw):
            trained[id(model)] = trained.get(id(model), 0) + epochs
            return f"{epochs} epochs"

        def correct(model, x, y):
            rows = np.arange(100_000) < 90_000  # the teacher: 90% right
            if model.count_params() != teacher.count_params():
                spec = spec_of[model.count_params()]
                done = trained.get(id(model), 0)
                patient = done >= epochs * distillation.PATIENT_FACTOR
                losses = self.screened if done < epochs else {**self.loss, **self.patient} if patient \
                    else self.loss
                rows[: round(100_000 * losses[spec])] = False
            return rows

        monkeypatch.setattr(distillation, "train_student", train)
        monkeypatch.setattr(budget, "correct", correct)


def _params(artifact) -> int:
    from compress.measure.size import size_stats

    return size_stats(artifact.flatbuffer).params_count


def test_max_drop_chooses_the_smallest_student_within_the_budget(tiny_digits, tmp_path, monkeypatch):
    """Losses of 0, 0, 0.5, 2 and 3 pp down the ladder: a 1 pp budget keeps the third rung, and
    its controls train that student, whether the distill's row ran before them or not."""
    from compress.orchestrate.plan import plan_steps

    data, teacher, architecture = tiny_digits
    stand_in = _LadderStandIn(monkeypatch, data, teacher, architecture, epochs=8)
    assert len(stand_in.rungs) == 5
    stand_in.loss = stand_in.screened = dict(zip(stand_in.rungs, (0.0, 0.0, 0.005, 0.02, 0.03), strict=True))
    made = {s.strategy.name: s.strategy for s in plan_steps(["distill:max_drop=1,epochs=8"])}
    expected = _params(apply_strategy(Distill(student=stand_in.rungs[2], epochs=8), teacher,
                                      architecture, data, seed=0, workdir=tmp_path / "named"))
    for order in (["distill", "student-scratch"], ["student-scratch-mixup", "distill"]):
        for name in order:
            artifact = apply_strategy(made[name], teacher, architecture, data, seed=0,
                                      workdir=tmp_path / order[0])
            assert _params(artifact) == expected, (order, name)
            if name == "distill":
                assert artifact.notes.startswith(f"max_drop=1: kept {stand_in.rungs[2]}, the smallest "
                                                 "student that meets it")
                assert stand_in.rungs[3] in artifact.notes and stand_in.rungs[4] in artifact.notes


def _climb(problem, tmp_path, monkeypatch, *, screened, final):
    """``distill:max_drop=1`` over stand-ins losing ``screened`` (after the screening epochs) and
    ``final`` (after all of them) down the ladder."""
    data, teacher, architecture = problem
    stand_in = _LadderStandIn(monkeypatch, data, teacher, architecture, epochs=8)
    stand_in.screened = dict(zip(stand_in.rungs, screened, strict=True))
    stand_in.loss = dict(zip(stand_in.rungs, final, strict=True))
    return stand_in, apply_strategy(Distill(max_drop=1, epochs=8), teacher, architecture, data, seed=0,
                                    workdir=tmp_path)


def test_max_drop_trains_fully_only_the_rungs_that_may_fit(tiny_digits, tmp_path, monkeypatch):
    """After the screening epochs the fourth rung seems to fit, but fails once fully trained, and
    the third, within the budget, is kept; the fifth, far outside even when screened, never
    trains further."""
    stand_in, artifact = _climb(tiny_digits, tmp_path, monkeypatch,
                                screened=(0.0, 0.0, 0.008, 0.009, 0.05), final=(0.0, 0.0, 0.008, 0.015, 0.05))
    notes = artifact.notes
    assert f"{stand_in.rungs[3]} -1.5±" in notes and f"{stand_in.rungs[2]} -0.8±" in notes
    assert "-5.0±" in notes and notes.count(stand_in.rungs[4]) == 1  # screened only
    assert "2 epochs, then 6 epochs" in notes


def test_max_drop_learns_from_the_widest_rung_what_the_rest_of_training_wins_back(
        tiny_digits, tmp_path, monkeypatch):
    """Screened too early, every rung seems 3-6 pp short; the widest, trained in full, wins back
    2.5 pp, so the next rung, 3.5 pp short when screened, is tried in full and kept."""
    data, teacher, architecture = tiny_digits
    stand_in, artifact = _climb(tiny_digits, tmp_path, monkeypatch, screened=(0.03, 0.03, 0.035, 0.05, 0.06),
                                final=(0.005, 0.005, 0.009, 0.02, 0.03))
    named = _params(apply_strategy(Distill(student=stand_in.rungs[2], epochs=8), teacher, architecture,
                                   data, seed=0, workdir=tmp_path / "named"))
    assert _params(artifact) == named
    assert f"{stand_in.rungs[0]} -0.5±" in artifact.notes and f"{stand_in.rungs[2]} -0.9±" in artifact.notes


def test_max_drop_with_no_student_within_the_budget_says_so_in_one_line(tiny_digits, tmp_path,
                                                                      monkeypatch):
    from compress.strategies import Skip

    data, teacher, architecture = tiny_digits
    stand_in = _LadderStandIn(monkeypatch, data, teacher, architecture, epochs=8)
    stand_in.loss = stand_in.screened = dict.fromkeys(stand_in.rungs, 0.03)
    with pytest.raises(Skip, match=r"^no student of the ladder meets max_drop=1 pp") as refused:
        apply_strategy(Distill(max_drop=1, epochs=8), teacher, architecture, data, seed=0,
                       workdir=tmp_path)
    assert "\n" not in str(refused.value)
    with pytest.raises(Skip, match=r"^no student of the ladder"):  # its control says the same
        apply_strategy(StudentScratch(max_drop=1, epochs=8), teacher, architecture, data, seed=0,
                       workdir=tmp_path)


def test_a_ladder_cut_short_by_the_time_budget_says_so_and_records_nothing(tiny_digits, tmp_path,
                                                                          monkeypatch):
    """Out of time before any rung trained in full is not "no student fits": the row says the
    budget ran out, and no choice is recorded for the controls."""
    import time

    import compress.strategies.distillation as distillation
    from compress.strategies import Skip

    data, teacher, architecture = tiny_digits
    stand_in = _LadderStandIn(monkeypatch, data, teacher, architecture, epochs=8)
    stand_in.loss = stand_in.screened = dict.fromkeys(stand_in.rungs, 0.0)
    with pytest.raises(Skip, match=r"^the time budget ran out before any student of the ladder"):
        apply_strategy(Distill(max_drop=1, epochs=8), teacher, architecture, data, seed=0,
                       workdir=tmp_path, deadline=time.time() - 1)
    assert not (tmp_path / distillation.CHOICES_DIR).exists()


def test_the_patient_schedule_is_given_when_no_student_meets_the_budget_after_its_epochs(
        tiny_digits, tmp_path, monkeypatch):
    """Every rung 1.5 pp short after its epochs: the widest trained goes on for the patient
    schedule, which brings it within; it is kept, and its control trains as long."""
    import compress.strategies.distillation as distillation

    data, teacher, architecture = tiny_digits
    stand_in = _LadderStandIn(monkeypatch, data, teacher, architecture, epochs=8)
    stand_in.loss = stand_in.screened = dict.fromkeys(stand_in.rungs, 0.015)
    stand_in.patient = {stand_in.rungs[0]: 0.0}
    artifact = apply_strategy(Distill(max_drop=1, epochs=8), teacher, architecture, data, seed=0,
                              workdir=tmp_path)
    assert artifact.notes.startswith(f"max_drop=1: kept {stand_in.rungs[0]}, the smallest")
    assert "then (patient) 16 epochs" in artifact.notes
    control = {}
    monkeypatch.setattr(distillation, "train_student",
                        lambda model, ctx, **kw: control.update(kw) or "trained")
    apply_strategy(StudentScratch(max_drop=1, epochs=8), teacher, architecture, data, seed=0,
                   workdir=tmp_path)
    assert control["epochs"] == 8 * distillation.PATIENT_FACTOR


def test_max_drop_refuses_a_named_student():
    from compress.common.errors import UserError

    with pytest.raises(UserError, match="max_drop chooses the student"):
        Distill(max_drop=1, student="mlp:16")


def test_under_max_drop_a_run_starts_the_controls_after_their_distill():
    """They train the student the distill's ladder chose, recorded by its row: side by side,
    each would climb the ladder again.  Without max_drop nothing waits."""
    from compress.orchestrate.plan import TechniquesFirst, plan_rows, plan_steps

    planned = plan_rows(plan_steps(["distill:max_drop=1", "distill:epochs=5"]), seeds=[0, 1])
    gate = TechniquesFirst(planned)
    ladder_controls = [p for p in planned if "max_drop=1.0" in (p.step.control_of or "")]
    assert len(ladder_controls) == 4 and not any(gate.ready(p) for p in ladder_controls)
    assert all(gate.ready(p) for p in planned if p not in ladder_controls)
    technique = ladder_controls[0].step.control_of
    gate.done(next(p for p in planned if p.seed == 0 and p.step.strategy.spec() == technique))
    assert [gate.ready(p) for p in ladder_controls] == [p.seed == 0 for p in ladder_controls]


def test_feature_targets_pair_student_layers_with_the_teachers_at_the_same_depth():
    """A ladder student (the teacher's depth) pairs layer for layer; a shallower one with the
    teacher's layers at the same relative depth, where the spatial shapes agree."""
    from compress.models.architectures import build_model, student_ladder
    from compress.models.features import feature_pairs

    teacher = build_model("cnn1d:32,64,64:64", (64, 1), 5, seed=0)
    deep, _ = student_ladder(teacher, "cnn1d:32,64,64:64", (64, 1), 5)[0]
    assert feature_pairs(build_model(deep, (64, 1), 5, seed=0), teacher) == [
        ("conv_0", "conv_0"), ("conv_1", "conv_1"), ("conv_2", "conv_2"), ("dense_0", "dense_0")]
    shallow = build_model("cnn1d:8:16", (64, 1), 5, seed=0)  # one convolution, one Dense
    assert feature_pairs(shallow, teacher) == [("dense_0", "dense_0")]  # lengths differ
    mlp = build_model("mlp:128,64", (20,), 3, seed=0)
    assert feature_pairs(build_model("mlp:32", (20,), 3, seed=0), mlp) == [("dense_0", "dense_1")]
    deeper = build_model("mlp:32,16,8,8", (20,), 3, seed=0)  # never paired deepest-first
    assert feature_pairs(deeper, mlp) == [("dense_0", "dense_0"), ("dense_1", "dense_0"),
                                          ("dense_2", "dense_1"), ("dense_3", "dense_1")]


def test_feature_targets_train_the_student_toward_the_teachers_layers(tiny_digits, tmp_path):
    data, teacher, architecture = tiny_digits
    plain, hinted = (apply_strategy(Distill(epochs=2, student="cnn:8,16:32", features=weight), teacher,
                                    architecture, data, seed=0, workdir=tmp_path)
                     for weight in (0.0, 1.0))
    assert "hidden layers matching the teacher's (conv_0→conv_0, conv_1→conv_1, dense_0→dense_0" \
        in hinted.notes and "matching" not in plain.notes
    assert not np.array_equal(TFLiteModel(plain.flatbuffer).predict(data.x_val),
                              TFLiteModel(hinted.flatbuffer).predict(data.x_val))
    from compress.common.errors import UserError

    with pytest.raises(UserError, match="features need the teacher run on every step"):
        Distill(features=1.0, transfer="none")


def test_the_automatic_student_is_weighed_against_the_teacher_without_converting_either(
        tiny_digits, tmp_path, monkeypatch):
    """MACs come from the layers (converting MobileNetV2 at 96x96 took 12 s a row); a teacher
    whose layers do not tell their sizes is counted from its TFLite file."""
    from compress.models.backend import keras
    from compress.models.cost import forward_macs
    from compress.strategies import distillation
    from compress.strategies.base import Context

    data, teacher, _ = tiny_digits
    converted, convert = [], distillation.to_tflite
    monkeypatch.setattr(distillation, "to_tflite", lambda model: converted.append(model) or convert(model))
    ctx = Context(data=data, teacher=teacher, teacher_architecture="a user's file", seed=0, workdir=tmp_path)
    student, _ = Distill().make_student(ctx)
    assert converted == [] and forward_macs(student) < forward_macs(teacher)
    layers = keras.layers
    backbone = keras.Sequential([keras.Input((None, None, 1)), layers.Conv2D(64, 3, padding="same"),
                                 layers.Conv2D(64, 3, padding="same")])
    inputs = keras.Input(data.input_shape)
    outputs = layers.Dense(data.n_classes)(layers.GlobalAveragePooling2D()(backbone(inputs)))
    free = keras.Model(inputs, outputs)
    assert forward_macs(free) is None
    Distill().make_student(Context(data=data, teacher=free, teacher_architecture="a user's file", seed=0,
                                   workdir=tmp_path))
    assert converted[0] is free
