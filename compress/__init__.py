"""compress: compare Keras model compression techniques, measured the same way.

Re-exports only.  Names resolve lazily so that ``import compress`` (and the
report commands) never pay for importing TensorFlow.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "compare": "compress.api",
    "sensitivity": "compress.api",
    "encode_rows": "compress.api",
    "bench": "compress.bench",
    "RunConfig": "compress.runner",
    "run": "compress.runner",
    "Strategy": "compress.strategies.base",
    "Context": "compress.strategies.base",
    "Compressed": "compress.strategies.base",
    "Skip": "compress.strategies.base",
    "register": "compress.strategies.base",
    "registry": "compress.strategies.base",
    "Dataset": "compress.data",
    "TrainingData": "compress.data",
    "load_dataset": "compress.data",
    "UserError": "compress.errors",
    "build_report": "compress.report",
    "recommend": "compress.recommend",
    "read_results": "compress.results",
    "NothingQualifies": "compress.recommend",
    "RunInterrupted": "compress.runner",
    "tune": "compress.tune",
    "TuneSettings": "compress.tune",
    "NothingMeetsBudget": "compress.tune",
    "TuneInterrupted": "compress.tune",
    "Range": "compress.strategies.base",
    "Choice": "compress.strategies.base",
    "LocalExecutor": "compress.sweep",
    "DaskExecutor": "compress.sweep",
    "SerialExecutor": "compress.sweep",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


#: Functions named like a module of the package.  Importing ``compress.recommend`` (the report
#: does) sets the package's attribute to that module, after which ``compress.recommend(rows)``
#: raised "'module' object is not callable"; the package always answers with the function.
_SAME_NAMED = frozenset(name for name in _EXPORTS if Path(__file__).with_name(f"{name}.py").is_file())


class _Package(types.ModuleType):
    def __getattribute__(self, name: str) -> Any:
        if name in _SAME_NAMED:
            return getattr(import_module(_EXPORTS[name]), name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package
