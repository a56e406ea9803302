"""The public conformance kit every strategy must pass, built-in or third-party.

Modelled on scikit-learn's ``check_estimator``: one call runs every check and
fails with the names of the checks that broke::

    from compress.testing import check_strategy, tiny_problem
    data, teacher, architecture = tiny_problem()
    check_strategy(MyStrategy(epochs=1), data, teacher, architecture)

Controls that copy settings from a paired strategy are checked as configured
beside it in a run (``Strategy.paired_with``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compress.data.builtin import TrainingData, load_dataset
from compress.models.architectures import build_model, default_teacher
from compress.models.backend import keras
from compress.models.flatbuffer import TFLiteModel, micro_only
from compress.models.training import compile_for_training
from compress.strategies.apply import Artifact, apply_strategy
from compress.strategies.base import RegistryError, Skip, Strategy, check_declaration, registry
from compress.strategies.resolve import strategies_from_spec


def tiny_problem(dataset: str = "document", *, seed: int = 0, epochs: int = 2) -> tuple[
    TrainingData, keras.Model, str
]:
    """A small dataset and a briefly trained default teacher, for fast checks."""
    data = load_dataset(dataset, seed).training
    architecture = default_teacher(data.input_shape, data.vocabulary)
    teacher = build_model(architecture, data.input_shape, data.n_classes, seed=seed, name="teacher",
                          vocabulary=data.vocabulary)
    compile_for_training(teacher, 1e-3)
    teacher.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0)
    return data, teacher, architecture


def _weights_digest(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def check_metadata(strategy: Strategy, **_: object) -> None:
    for attribute in ("name", "family", "summary"):
        value = getattr(strategy, attribute, None)
        assert isinstance(value, str) and value.strip(), f"{attribute} must be a non-empty string"


def check_params_round_trip(strategy: Strategy, **_: object) -> None:
    params = strategy.get_params()
    assert type(strategy)(**params).get_params() == params, "constructor does not round-trip"
    through_json = json.loads(json.dumps(params))
    assert type(strategy).from_params(**through_json).get_params() == params, (
        "params do not survive JSON"
    )
    if registry().get(strategy.name) is type(strategy) or ">" in strategy.name:
        (again,) = strategies_from_spec(strategy.spec())
        assert again.get_params() == params, f"spec {strategy.spec()!r} does not round-trip"


def _labels(flatbuffer: bytes, x: np.ndarray) -> np.ndarray:
    """Predicted labels, in LiteRT, or in TFLite Micro for a file only it runs."""
    if micro_only(flatbuffer):
        from compress.measure.micro import run_in_micro

        outcome = run_in_micro(flatbuffer, x)
        assert outcome["runs"], f"TFLite Micro cannot run the file: {outcome['reason']}"
        return np.asarray(outcome["labels"])
    return TFLiteModel(flatbuffer).predict(x).argmax(axis=1)


def check_artifact(artifact: Artifact, data: TrainingData, **_: object) -> None:
    assert isinstance(artifact.flatbuffer, bytes) and artifact.flatbuffer, "no TFLite flatbuffer"
    if micro_only(artifact.flatbuffer):
        labels = _labels(artifact.flatbuffer, data.x_val)
        assert labels.shape == (len(data.x_val),) and set(labels.tolist()) <= set(range(data.n_classes)), (
            "TFLite Micro's predictions are not one class per row")
        return
    predictions = TFLiteModel(artifact.flatbuffer).predict(data.x_val)
    assert predictions.shape == (len(data.x_val), data.n_classes), (
        f"predictions have shape {predictions.shape}, expected {(len(data.x_val), data.n_classes)}"
    )
    assert np.all(np.isfinite(predictions)), "predictions contain NaN or inf"


def check_teacher_untouched(before: str, teacher: keras.Model, **_: object) -> None:
    assert _weights_digest(teacher) == before, "the shared teacher's weights changed"


def check_deterministic(artifact: Artifact, again: Artifact, data: TrainingData, **_: object) -> None:
    first, second = _labels(artifact.flatbuffer, data.x_val), _labels(again.flatbuffer, data.x_val)
    assert np.array_equal(first, second), (
        f"the same seed gave different predictions (accuracy {np.mean(first == data.y_val):.3f} "
        f"then {np.mean(second == data.y_val):.3f})"
    )


def check_teacher_weights_unused(strategy: Strategy, artifact: Artifact, untrained: Artifact | None,
                                 **_: object) -> None:
    """A strategy that needs no trained teacher (a run starts it while the teacher trains) makes
    the same flatbuffer from an untrained teacher of the same layers."""
    if untrained is not None:
        assert untrained.flatbuffer == artifact.flatbuffer, (
            "needs_trained_teacher is False, yet an untrained teacher gave another model")


CHECKS: tuple[Callable[..., None], ...] = (
    check_metadata,
    check_params_round_trip,
    check_artifact,
    check_teacher_untouched,
    check_deterministic,
    check_teacher_weights_unused,
)


def _name(strategy: Strategy) -> str:
    return str(getattr(strategy, "name", type(strategy).__name__))


def check_strategy(
    strategy: Strategy,
    data: TrainingData,
    teacher: keras.Model,
    teacher_architecture: str,
    *,
    seed: int = 0,
) -> None:
    """Run every conformance check; raise AssertionError naming each one that failed.

    The declarations are checked first, on the class and on the instance as its ``__init__``
    configured it, since a run reads the instance's (``cost``, ``needs_trained_teacher``...).
    A strategy that cannot handle this teacher raises ``Skip``; the kit checks
    that it left the teacher alone and lets the ``Skip`` through.
    """
    try:  # a class that registers by name (a pipeline is built from a spec instead)
        if getattr(type(strategy), "name", None):
            check_declaration(type(strategy))
            check_declaration(strategy)
    except RegistryError as error:  # an unselectable strategy fails here, not in a later check
        raise AssertionError(f"{_name(strategy)} fails conformance:\n  declaration: {error}") from error
    before = _weights_digest(teacher)
    with tempfile.TemporaryDirectory() as workdir:
        def produce(model: keras.Model = teacher) -> Artifact:
            return apply_strategy(strategy, model, teacher_architecture, data,
                                  seed=seed, workdir=Path(workdir))

        try:
            artifact = produce()
        except Skip:
            check_teacher_untouched(before, teacher)
            raise
        except Exception as error:  # a broken strategy fails the kit, named, never with a bare crash
            raise AssertionError(f"{_name(strategy)} fails conformance:\n  runs: "
                                 f"{type(error).__name__}: {error}") from error
        again = produce()
        # the same layers from fresh weights
        untrained = None if strategy.needs_trained_teacher else produce(keras.models.clone_model(teacher))
    failures = []
    context = {"strategy": strategy, "artifact": artifact, "again": again, "untrained": untrained,
               "data": data, "teacher": teacher, "before": before}
    for check in CHECKS:
        try:
            check(**context)
        except AssertionError as error:
            failures.append(f"{check.__name__}: {error}")
        except Exception as error:  # e.g. get_params reading an attribute __init__ never set
            failures.append(f"{check.__name__}: {type(error).__name__}: {error}")
    if failures:
        raise AssertionError(f"{_name(strategy)} fails conformance:\n  " + "\n  ".join(failures))
