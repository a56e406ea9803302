"""Every script in examples/ runs as a user runs it (a copy, in a scratch folder), so none rots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compress.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_script_runs(name, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = subprocess.run([sys.executable, str(tmp_path / "examples" / name)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "an example prints what it found"


def test_the_example_sweep_file_parses():
    config = load_sweep(ROOT / "examples" / "sweep.toml")
    assert config.specs[0] == "baseline" and len(config.specs) > 2
