"""Roles, not names: every technique configuration gets its own matched controls."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from compress.common.errors import UserError
from compress.orchestrate.plan import plan_steps
from compress.strategies import Compressed, Context, Strategy, register, unregister
from compress.strategies.base import RegistryError


def _controls(steps: list[Any]) -> list[Any]:
    return [s for s in steps if s.role == "control"]


def test_a_global_epochs_never_splits_a_control_from_its_technique():
    steps = plan_steps(["distill:epochs=20"], epochs=2)
    (distill,) = [s for s in steps if s.role == "technique"]
    controls = _controls(steps)
    assert {c.strategy.name for c in controls} == {"student-scratch", "student-scratch-mixup"}
    for control in controls:
        assert control.strategy.epochs == 20
        assert control.control_of == distill.strategy.spec()


def test_each_distill_spec_gets_its_own_pair_of_controls():
    steps = plan_steps(["distill:student=mlp:16", "distill:student=mlp:64"])
    controls = _controls(steps)
    assert len(controls) == 4
    by_technique: dict[str, set[str]] = {}
    for control in controls:
        by_technique.setdefault(control.control_of, set()).add(control.strategy.student)
    assert sorted(map(sorted, by_technique.values())) == [["mlp:16"], ["mlp:64"]]


def test_the_baseline_comes_first_and_every_control_follows_its_technique():
    steps = plan_steps(["finetune", "distill", "student-scratch"])
    assert steps[0].role == "baseline"
    index = {s.strategy.spec(): i for i, s in enumerate(steps)}
    for control in _controls(steps):
        assert index[control.control_of] < index[control.strategy.spec()]


def test_a_control_without_its_technique_is_refused():
    with pytest.raises(UserError, match="student-scratch is a control for distill"):
        plan_steps(["student-scratch"])


def test_explicit_control_settings_win_over_the_copied_ones():
    steps = plan_steps(["distill:epochs=7", "student-scratch:epochs=3"])
    scratch = next(s for s in _controls(steps) if s.strategy.name == "student-scratch")
    assert scratch.strategy.epochs == 3


class _Ablation(Strategy):
    """A third party's control: declares what it controls, nothing else."""

    name, family, summary = "test-ablation", "distillation", "distill without soft targets"
    role = "control"
    control_of = "distill"
    fast_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, epochs: int | None = None) -> None:
        self.epochs = epochs

    def compress(self, ctx: Context) -> Compressed:
        return Compressed(model=ctx.teacher)


def test_a_plugin_control_is_paired_with_every_configuration_it_controls():
    register(_Ablation)
    try:
        steps = plan_steps(["distill:epochs=5", "distill:epochs=9", "test-ablation"])
    finally:
        unregister("test-ablation")
    ablations = [s for s in steps if s.strategy.name == "test-ablation"]
    assert sorted(s.strategy.epochs for s in ablations) == [5, 9]
    assert {s.control_of.split("epochs=")[1].split(",")[0] for s in ablations} == {"5", "9"}


def test_a_control_must_name_what_it_controls():
    class Orphan(_Ablation):
        name = "test-orphan"
        control_of = None

    with pytest.raises(RegistryError, match="control_of"):
        register(Orphan)
