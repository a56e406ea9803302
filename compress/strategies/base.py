"""The strategy plugin contract: Strategy, Context, Compressed and the registry.

A strategy turns a fresh clone of the teacher into a compressed model.  It
never measures anything: the orchestration times it and the measurement stage
scores its output, identically for every strategy.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from importlib import import_module, metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from compress.common.errors import UserError
from compress.models.training import TrainingLimits

if TYPE_CHECKING:
    from compress.data.builtin import TrainingData
    from compress.models.backend import keras
    from compress.models.stage_cache import StageCache

ENTRY_POINT_GROUP = "compress.strategies"
BUILTIN_MODULES = (
    "compress.strategies.baseline",
    "compress.strategies.quantization",
    "compress.strategies.lowbit",
    "compress.strategies.pruning",
    "compress.strategies.clustering",
    "compress.strategies.factorization",
    "compress.strategies.lookup",
    "compress.strategies.distillation",
    "compress.strategies.finetuning",
)


class RegistryError(ValueError):
    """A strategy class cannot be registered (duplicate name, missing metadata)."""


@dataclass(frozen=True, eq=False)
class Context:
    """Everything a strategy may use; the test split is deliberately absent."""

    data: TrainingData
    teacher: keras.Model  # a fresh clone: the strategy may train or mutate it freely
    teacher_architecture: str
    seed: int
    workdir: Path
    #: Families of the stages that already ran in a chain, so a later stage can preserve
    #: what an earlier one did (sparsity, clusters).
    history: tuple[str, ...] = ()
    #: Where a chain keeps the models its leading stages made, for other chains that start
    #: the same way (sweep and tune jobs set it; None: nothing is kept).
    stage_cache: StageCache | None = None
    #: What bounds its training: ``limits.plan`` turns a budget in epochs into what runs on this
    #: data and teacher, and a loop of its own asks ``limits.out_of_time()`` (``--time-budget``)
    #: and says what it cut with ``limits.record_cut``; ``training.fit`` takes them whole.
    limits: TrainingLimits = field(default_factory=TrainingLimits)


@dataclass(frozen=True, eq=False)
class Compressed:
    """A strategy's output: a Keras model to convert, or a finished TFLite flatbuffer."""

    model: keras.Model | None = None
    tflite: bytes | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if (self.model is None) == (self.tflite is None):
            raise TypeError("Compressed needs exactly one of model= or tflite=")


@dataclass(frozen=True)
class Range:
    """A searchable number from ``low`` to ``high``: integers if both ends are, stepped by ``step``
    or spread on a log scale.  ``compress tune`` reads these; nothing else does."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0) or (self.log and self.step):
            raise RegistryError(f"Range({self.low}, {self.high}, step={self.step}, log={self.log}) "
                                "needs low < high, and log only with low > 0 and no step")

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))


@dataclass(frozen=True)
class Choice:
    """A searchable parameter that takes one of a few values."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise RegistryError("Choice needs at least one value")


@dataclass(frozen=True)
class Task:
    """What a search space may depend on: the teacher and the shape of the data."""

    teacher: keras.Model
    teacher_architecture: str
    input_shape: tuple[int, ...]
    n_classes: int
    vocabulary: int | None = None  # token ids below it (texts), or None


class Skip(Exception):
    """Raised by a strategy that cannot handle this teacher or data; the row says why."""


S = TypeVar("S", bound="Strategy")


class Strategy:
    """Base class: hyperparameters are explicit keyword arguments of ``__init__``.

    Like scikit-learn estimators, ``__init__`` stores each argument under its
    own name, so ``get_params()`` round-trips through the constructor and a row
    can be re-run from its spec.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    summary: ClassVar[str]
    #: Small settings that keep the shared conformance suite fast.
    fast_params: ClassVar[dict[str, Any]] = {}
    #: What the row is for: "baseline" (the reference), "technique" (a compression method)
    #: or "control" (the same budget without the technique, to judge one).  Everything
    #: downstream pairs and selects rows by role, never by name.
    role: ClassVar[str] = "technique"
    #: For a control: the name of the strategy it controls.  A run pairs one copy of the
    #: control with every configuration of that strategy (see ``paired_with``).
    control_of: ClassVar[str | None] = None
    #: Controls that must run beside this strategy for its row to mean anything.
    companions: ClassVar[tuple[str, ...]] = ()
    #: Its output is a finished TFLite flatbuffer, so no chain stage can follow it.
    produces_tflite: ClassVar[bool] = False
    #: What ``compress tune`` may vary (parameter -> Range or Choice); None: never tuned, {}:
    #: tuned at its defaults.  A parameter left out keeps its default.
    tunable: ClassVar[dict[str, Range | Choice] | None] = None
    #: Families whose output this strategy may take as a later stage of a tuned chain
    #: (e.g. quantization after pruning); empty: it only starts a chain or stands alone.
    follows: ClassVar[tuple[str, ...]] = ()
    #: Rough training cost relative to a short fine-tune (0: no training).  The tuner tries
    #: cheap candidates first.
    cost: ClassVar[float] = 1.0
    #: False: the strategy reads only the teacher's architecture (``ctx.teacher`` may be the
    #: untrained model), so a run can start it while the teacher trains.  The conformance suite
    #: checks it: the same flatbuffer from the trained and from an untrained teacher.
    needs_trained_teacher: ClassVar[bool] = True
    #: True: a control that trains what its technique's row chose (distill's student ladder
    #: under ``max_drop``), so a run starts it only after that row has finished, rather than
    #: making the same choice twice side by side.
    after_technique: ClassVar[bool] = False
    #: What a deployment target may require that this strategy's models have: "int8-io" (int8
    #: inputs and outputs, as a microcontroller's pipeline feeds them).  A run for such a target
    #: adds, at its defaults, every technique that provides what it requires.
    provides: ClassVar[tuple[str, ...]] = ()

    def compress(self, ctx: Context) -> Compressed:
        raise NotImplementedError

    def budget(self) -> float | None:
        """The accuracy budget (pp below the teacher) this strategy answers itself by the rule of
        ``common.certify``, or None: a run that asks one sets evidence rows aside for it."""
        value = getattr(self, "max_drop", None)
        return None if value is None else float(value)

    @classmethod
    def search_space(cls, task: Task) -> dict[str, Range | Choice] | None:
        """The parameters ``compress tune`` varies for this teacher and data (see ``tunable``);
        override when the ranges depend on the task, as a student's widths do."""
        return None if cls.tunable is None else dict(cls.tunable)

    @classmethod
    def param_names(cls) -> list[str]:
        """The named parameters of ``__init__`` (a class without one has none)."""
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        signature = inspect.signature(cls.__init__)
        return [name for name, p in signature.parameters.items() if name != "self" and p.kind not in variadic]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    @classmethod
    def from_params(cls: type[S], **raw: Any) -> S:
        """Build from user-given values: unknown keys and wrong types are UserErrors."""
        valid = cls.param_names()
        unknown = sorted(set(raw) - set(valid))
        if unknown:
            raise UserError(
                f"{cls.name}: unknown parameter {unknown[0]!r}; "
                f"valid parameters: {', '.join(valid) or '(none)'}"
            )
        hints = typing.get_type_hints(cls.__init__)
        params = {key: _coerce(cls.name, key, value, hints.get(key)) for key, value in raw.items()}
        return cls(**params)

    def paired_with(self: S, technique: Strategy) -> S:
        """This control configured for one technique: every parameter left unset (None)
        takes the technique's value of the same name, so only the technique differs."""
        source = technique.get_params()
        params = {key: source[key] if value is None and key in source else value
                  for key, value in self.get_params().items()}
        return type(self)(**params)

    def controlled(self, name: str) -> Strategy | None:
        """The part of this strategy that a control of ``name`` must copy, if any."""
        return self if self.name == name else None

    def label(self) -> str:
        """A short display name: the name plus only the parameters that differ from defaults."""
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
                    if p.default is not inspect.Parameter.empty}
        # A control's parameter defaulting to None is inherited from the paired technique: not
        # this row's own.  A technique's (max_drop=None: off) is its own once set.
        inherited = self.role == "control"
        changed = {k: v for k, v in self.get_params().items()
                   if k not in defaults or (defaults[k] != v and not (inherited and defaults[k] is None))}
        params = ",".join(f"{k}={_format_value(v)}" for k, v in changed.items())
        return f"{self.name}:{params}" if params else self.name

    def spec(self) -> str:
        """``name:key=value,...`` with every parameter spelled out, parseable by ``parse_spec``."""
        params = ",".join(f"{k}={_format_value(v)}" for k, v in self.get_params().items())
        return f"{self.name}:{params}" if params else self.name

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # Validation helpers for subclasses' __init__.
    def _check(self, ok: bool, message: str) -> None:
        if not ok:
            raise UserError(f"{self.name}: {message}")

    def _check_open_unit(self, key: str, value: float) -> None:
        self._check(0 < value < 1, f"{key} must be between 0 and 1 (exclusive), got {value}")

    def _check_positive(self, key: str, value: float | None) -> None:
        self._check(value is None or value > 0, f"{key} must be greater than 0, got {value}")

    def _check_budget(self, epochs: int | None, lr: float | None) -> None:
        """A training budget: at least one epoch and a positive learning rate (None: inherited)."""
        self._check(epochs is None or epochs >= 1, f"epochs must be at least 1, got {epochs}")
        self._check_positive("lr", lr)


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


#: What a strategy's name may hold: anything else is cut apart by the spec syntax.
STRATEGY_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
#: The parameter types a spec's values can be checked against.
SPEC_TYPES = (int, float, bool, str)


def _coerce_kinds(hint: Any) -> tuple[Any, ...] | None:
    """The types an annotation allows (int, float, bool, str, optionally None), or None when a
    spec value could not be checked against it."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    allowed = typing.get_args(hint) if is_union else (hint,)
    kinds = [kind for kind in allowed if kind is not type(None)]
    return allowed if kinds and all(kind in SPEC_TYPES for kind in kinds) else None


def _coerce(strategy: str, key: str, value: Any, hint: Any) -> Any:
    """Check a user value against the parameter's annotation (int, float, bool, str, optional)."""
    allowed = _coerce_kinds(hint) or (hint,)
    if value is None and type(None) in allowed:
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and is_number and isinstance(value, int):
            return value
        if kind is float and is_number and math.isfinite(value):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed if k is not type(None))
    raise UserError(f"{strategy}: {key} must be {names or 'valid'}, got {value!r}")


# Registry --------------------------------------------------------------------

_REGISTRY: dict[str, type[Strategy]] = {}
_loaded = False


ROLES = ("baseline", "technique", "control")


def register(cls: type[S]) -> type[S]:
    """Class decorator that makes a strategy selectable by name."""
    check_declaration(cls)
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise RegistryError(
            f"a strategy named {cls.name!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    _REGISTRY[cls.name] = cls
    return cls


#: Declarations that are yes or no; an instance may set them in ``__init__`` (a chain from its
#: stages, a control under ``max_drop``).
FLAGS = ("produces_tflite", "needs_trained_teacher", "after_technique")


def check_declaration(declared: type[Strategy] | Strategy) -> None:
    """What a strategy must declare to be selectable and checkable (``register`` and the
    conformance kit both ask): RegistryError naming the first thing missing or wrong.

    ``declared`` is the class, or an instance as its ``__init__`` configured it: a strategy may
    set ``cost`` or its flags per instance, and a run reads the instance's.
    """
    cls = declared if isinstance(declared, type) else type(declared)
    configured = "" if declared is cls else " as configured"

    def named(attribute: str) -> str:
        return f"{cls.__qualname__}.{attribute}{configured}"

    for attribute in ("name", "family", "summary"):
        if not getattr(declared, attribute, None):
            raise RegistryError(f"{cls.__qualname__}{configured} needs a class attribute {attribute!r}")
    if not re.fullmatch(STRATEGY_NAME, str(declared.name)):
        raise RegistryError(f"{named('name')} {declared.name!r} could never be selected: a spec splits "
                            "names at : > , = and spaces; use letters, digits, '-', '_' and '.'")
    cost = declared.cost
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost < math.inf:
        raise RegistryError(f"{named('cost')} must be a number of 0 or more (its training "
                            f"cost against a distilled student's 1), got {cost!r}")
    hints = typing.get_type_hints(cls.__init__)
    untyped = [name for name in cls.param_names() if _coerce_kinds(hints.get(name)) is None]
    if untyped:
        raise RegistryError(f"{cls.__qualname__}.__init__ parameter {untyped[0]!r} needs an annotation of "
                            "int, float, bool or str (optionally | None): specs are checked against it")
    if declared.role not in ROLES:
        raise RegistryError(f"{named('role')} must be one of {', '.join(ROLES)}, got {declared.role!r}")
    if (declared.role == "control") != bool(declared.control_of):
        raise RegistryError(f"{cls.__qualname__}{configured}: a control names the strategy it controls "
                            "in control_of, and only a control does")
    for flag in FLAGS:
        if not isinstance(getattr(declared, flag), bool):
            raise RegistryError(f"{named(flag)} must be True or False, got {getattr(declared, flag)!r}")
    if declared.after_technique and declared.role != "control":
        raise RegistryError(f"{named('after_technique')} is True, but only a control waits for its "
                            "technique's row")
    if not (isinstance(declared.provides, tuple) and all(isinstance(p, str) for p in declared.provides)):
        raise RegistryError(f"{named('provides')} must be a tuple of strings, got {declared.provides!r}")
    unknown = sorted(set(declared.tunable or {}) - set(cls.param_names()))
    if unknown:
        raise RegistryError(f"{named('tunable')} names {unknown[0]!r}, which is not a "
                            f"parameter of its __init__ ({', '.join(cls.param_names()) or 'none'})")


def unregister(name: str) -> None:
    """Remove a strategy (for tests and for plugins replacing their own)."""
    _REGISTRY.pop(name, None)


def _load_plugins(reload: bool) -> None:
    global _loaded
    if _loaded and not reload:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        import_module(module)
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as error:  # a broken plugin must not break the tool
            warnings.warn(f"strategy plugin {entry_point.name!r} failed to load: {error}", stacklevel=2)
            continue
        if inspect.isclass(loaded) and issubclass(loaded, Strategy) and loaded.name not in _REGISTRY:
            register(loaded)


def registry(reload: bool = False) -> dict[str, type[Strategy]]:
    """Every available strategy by name: built-ins, registered ones and entry points.

    Entry points are read once; ``reload=True`` reads them again (after installing a plugin).
    """
    _load_plugins(reload)
    return dict(sorted(_REGISTRY.items()))


def select(pattern: str) -> list[type[Strategy]]:
    """Strategies whose names match ``pattern`` (shell wildcards allowed)."""
    available = registry()
    matches = [cls for name, cls in available.items() if fnmatch.fnmatchcase(name, pattern)]
    if not matches:
        raise UserError(
            f"no strategy matches {pattern!r}; available: {', '.join(available)}"
        )
    return matches


