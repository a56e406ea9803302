"""compress: compare Keras model compression techniques, measured the same way.

Re-exports only.  Names resolve lazily so that ``import compress`` (and the
report commands) never pay for importing TensorFlow.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "compare": "compress.api",
    "sensitivity": "compress.api",
    "encode_rows": "compress.api",
    "bench": "compress.orchestrate.bench",
    "RunConfig": "compress.orchestrate.config",
    "run": "compress.orchestrate.run",
    "RunInterrupted": "compress.orchestrate.run",
    "Strategy": "compress.strategies.base",
    "Context": "compress.strategies.base",
    "Compressed": "compress.strategies.base",
    "Skip": "compress.strategies.base",
    "register": "compress.strategies.base",
    "registry": "compress.strategies.base",
    "Range": "compress.strategies.base",
    "Choice": "compress.strategies.base",
    "Dataset": "compress.data.builtin",
    "TrainingData": "compress.data.builtin",
    "load_dataset": "compress.data.builtin",
    "TFLiteModel": "compress.models.flatbuffer",
    "UserError": "compress.common.errors",
    "build_report": "compress.report.build",
    "recommend": "compress.analysis.recommend",
    "NothingQualifies": "compress.analysis.recommend",
    "read_results": "compress.results.rows",
    "tune": "compress.orchestrate.tune",
    "TuneSettings": "compress.orchestrate.tune_space",
    "NothingMeetsBudget": "compress.orchestrate.tune",
    "TuneInterrupted": "compress.orchestrate.tune",
    "LocalExecutor": "compress.orchestrate.executors",
    "DaskExecutor": "compress.orchestrate.executors",
    "SerialExecutor": "compress.orchestrate.executors",
    "sweep": "compress.orchestrate.sweep",
    "load_sweep": "compress.orchestrate.sweep",
    "SweepInterrupted": "compress.orchestrate.sweep",
    "Device": "compress.analysis.devices",
    "parse_device": "compress.analysis.devices",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
