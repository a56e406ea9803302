"""Every benchmark script imports against the current package, so none rots unnoticed (running
them takes minutes to hours: that is what they are for, not the test suite)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_the_benchmark_script_imports(script):
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # top-level imports and definitions; main() is not called
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
