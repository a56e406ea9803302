"""Every script in examples/ runs as a user runs it (a copy, in a scratch folder), so none rots.

The scripts run side by side: each is mostly one core of TensorFlow, and the machine has two.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from compress.orchestrate.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")


def test_every_example_script_runs(tmp_path):
    assert SCRIPTS, "examples/ holds no script"
    started = {}
    for name in SCRIPTS:  # output to files: a full pipe would stall a script until its turn
        folder = tmp_path / name.removesuffix(".py")
        shutil.copytree(ROOT / "examples", folder / "examples")
        with open(folder / "stdout", "w") as stdout, open(folder / "stderr", "w") as stderr:
            started[name] = (folder, subprocess.Popen(
                [sys.executable, str(folder / "examples" / name)], cwd=folder, stdout=stdout,
                stderr=stderr, env={**os.environ}))
    for name, (folder, process) in started.items():
        process.wait(timeout=900)
        assert process.returncode == 0, f"{name}:\n{(folder / 'stderr').read_text()[-3000:]}"
        assert (folder / "stdout").read_text().strip(), f"{name} printed nothing"


def test_the_example_sweep_file_parses():
    config = load_sweep(ROOT / "examples" / "sweep.toml")
    assert config.specs[0] == "baseline" and len(config.specs) > 2
