"""Every registered strategy, and one defined only here, passes the public conformance kit."""

from __future__ import annotations

import numpy as np
import pytest

from compress.strategies import (
    Compressed,
    Context,
    Skip,
    Strategy,
    register,
    registry,
    strategies_from_spec,
    unregister,
)
from compress.strategies.base import check_declaration
from compress.testing import check_strategy


@pytest.mark.parametrize("name", sorted(registry()))
def test_registered_strategy_conforms(name, tiny):
    cls = registry()[name]
    try:
        check_strategy(cls.from_params(**cls.fast_params), *tiny)
    except Skip as reason:
        pytest.fail(f"{name} skipped the default teacher: {reason}")


CHAINS = ["prune-magnitude:epochs=1>quantize-int8:samples=20", "cluster:epochs=1>quantize-int8",
          "distill:epochs=2>quantize-dynamic", "prune-structured:epochs=1>finetune:epochs=1",
          pytest.param("prune-magnitude:epochs=1>cluster:epochs=1>quantize-qat:epochs=1",
                       marks=pytest.mark.slow)]  # ~30 s of tracing


@pytest.mark.parametrize("spec", CHAINS)
def test_chains_conform(spec, tiny):
    (chain,) = strategies_from_spec(spec)
    check_strategy(chain, *tiny)


class HalfPrecisionWeights(Strategy):
    """A strategy that exists only in this test module."""

    name = "test-half-precision"
    family = "quantization"
    summary = "Rounds the teacher's weights through float16 (defined in a test)."

    def __init__(self, keep_bias: bool = True) -> None:
        self.keep_bias = keep_bias

    def compress(self, ctx: Context) -> Compressed:
        model = ctx.teacher
        model.set_weights([w if (self.keep_bias and w.ndim == 1) else w.astype("float16").astype("float32")
                           for w in model.get_weights()])
        return Compressed(model=model, notes="float16-rounded weights")


class MutatesTheTeacher(Strategy):
    """Breaks the rules on purpose: the kit must catch it."""

    name = "test-bad"
    family = "x"
    summary = "y"

    def __init__(self) -> None:
        pass

    def compress(self, ctx: Context) -> Compressed:
        return Compressed(model=ctx.teacher)


@pytest.fixture
def registered():
    register(HalfPrecisionWeights)
    yield HalfPrecisionWeights
    unregister(HalfPrecisionWeights.name)


def test_a_strategy_defined_in_a_test_conforms(registered, tiny):
    check_strategy(registered(keep_bias=False), *tiny)


def test_the_kit_catches_a_strategy_that_breaks_the_rules(tiny):
    data, teacher, architecture = tiny

    class Nondeterministic(MutatesTheTeacher):
        calls = 0

        def compress(self, ctx):
            type(self).calls += 1
            if type(self).calls == 2:  # the second run predicts class 0 for everything
                weights = ctx.teacher.get_weights()
                weights[-1][0] += 1000.0
                ctx.teacher.set_weights(weights)
            return Compressed(model=ctx.teacher)

    with pytest.raises(AssertionError, match="check_deterministic"):
        check_strategy(Nondeterministic(), data, teacher, architecture)


def test_the_kit_catches_a_strategy_that_uses_the_teacher_it_said_it_did_not_need(tiny):
    """A run starts such a strategy while the teacher trains: it would get an untrained one."""

    class ClaimsNoTeacher(HalfPrecisionWeights):
        needs_trained_teacher = False

    with pytest.raises(AssertionError, match="check_teacher_weights_unused"):
        check_strategy(ClaimsNoTeacher(), *tiny)


def test_the_kit_names_the_check_a_crashing_strategy_fails(tiny):
    """An __init__ that stores its parameter under another name breaks get_params: the kit
    says which check broke instead of letting the AttributeError out."""

    class MisnamedParameter(HalfPrecisionWeights):
        def __init__(self, keep_bias: bool = True, k: int = 1) -> None:
            self.keep_bias = keep_bias
            self.kk = k

    with pytest.raises(AssertionError, match=r"fails conformance:\n  (runs|check_\w+): AttributeError: "
                                             r".*has no attribute 'k'"):
        check_strategy(MisnamedParameter(), *tiny)


def test_a_strategy_cannot_change_the_data_every_row_shares_nor_return_a_bare_model(tiny):
    """Scaling ctx.data in place would corrupt the rows after it; the arrays refuse the write."""
    data, teacher, architecture = tiny
    before = data.x_train.copy()

    class ScalesInPlace(HalfPrecisionWeights):
        def compress(self, ctx):
            ctx.data.x_train[...] *= 1000.0
            return super().compress(ctx)

    with pytest.raises(AssertionError, match="read-only"):
        check_strategy(ScalesInPlace(), data, teacher, architecture)
    assert np.array_equal(data.x_train, before) and data.x_train.flags.writeable

    class ReturnsTheModel(HalfPrecisionWeights):
        def compress(self, ctx):
            return ctx.teacher

    with pytest.raises(AssertionError, match=r"returned a Functional|returned a Sequential|must return "
                                             r"compress.Compressed"):
        check_strategy(ReturnsTheModel(), data, teacher, architecture)


def test_the_kit_names_a_declaration_a_spec_could_never_check(tiny):
    """An unannotated parameter made every later check fail as "keep_bias must be None"."""

    class Untyped(HalfPrecisionWeights):
        def __init__(self, keep_bias=True) -> None:
            self.keep_bias = keep_bias

    with pytest.raises(AssertionError, match=r"fails conformance:\n  declaration: .*parameter 'keep_bias' "
                                             r"needs an annotation"):
        check_strategy(Untyped(), *tiny)


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("cost", -1.0, r"\.cost as configured must be a number of 0 or more"),
    ("needs_trained_teacher", None, r"\.needs_trained_teacher as configured must be True or False"),
    ("after_technique", True, r"\.after_technique as configured is True, but only a control waits"),
    ("role", "reference", r"\.role as configured must be one of baseline, technique, control"),
])
def test_the_kit_holds_what_an_instance_declares_to_the_rules_of_the_class(attribute, value, message, tiny):
    """A run reads the instance's declarations, and ``__init__`` may set them (a ladder's cost,
    a control that waits under max_drop): set wrong there, the class alone would pass."""

    class SetsItsOwn(HalfPrecisionWeights):
        def __init__(self, keep_bias: bool = True) -> None:
            super().__init__(keep_bias)
            setattr(self, attribute, value)

    check_declaration(SetsItsOwn)  # the class alone passes
    with pytest.raises(AssertionError, match=r"fails conformance:\n  declaration: .*SetsItsOwn" + message):
        check_strategy(SetsItsOwn(), *tiny)
