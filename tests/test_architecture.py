"""The house rules that no single feature test would notice breaking.

- Imports run one way, down the pipeline's stages, with no circle anywhere, and no strategy
  family imports another: import-linter's contracts in pyproject.toml (docs/architecture.md),
  checked on the package as it is and shown to fail, naming both modules, on a copy with one
  forbidden import added.
- No module grows past about 600 lines unless its docstring says why it must be one piece, and
  no function past about 80 unless its docstring says why ("One function on purpose: ...").
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "compress"
MAX_LINES = 600
MAX_FUNCTION_LINES = 80


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's contracts from ``root``/pyproject.toml, on the ``compress`` found there."""
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
               "sys.exit(lint_imports_command())", "--no-cache", "--no-logo"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_package_keeps_its_import_contracts():
    checked = lint_imports(ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 kept, 0 broken" in checked.stdout


@pytest.fixture
def copy(tmp_path) -> Path:
    """The package and its contracts, in a folder of their own, to break on purpose."""
    shutil.copytree(PACKAGE, tmp_path / "compress", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def _add_import(copy: Path, module: str, line: str, *, inside_function: bool = False) -> None:
    path = copy / (module.replace(".", "/") + ".py")
    text = path.read_text(encoding="utf-8")
    if inside_function:  # a lazy import counts as much as a top-level one
        line = f"\n\ndef _deliberate():\n    {line}\n"
    path.write_text(f"{text}\n{line}\n", encoding="utf-8")


def test_an_upward_import_fails_and_names_both_modules(copy):
    """The data stage reaching for the report: the first stage may not know the last."""
    _add_import(copy, "compress.data.images", "from compress.report import plots  # noqa",
                inside_function=True)
    checked = lint_imports(copy)
    assert checked.returncode != 0
    assert "compress.data is not allowed to import compress.report" in checked.stdout
    assert "compress.data.images -> compress.report.plots" in checked.stdout


def test_a_strategy_that_measures_itself_fails(copy):
    """Strategies return models and notes; measurement is a later stage."""
    _add_import(copy, "compress.strategies.distillation", "from compress.measure.size import size_fields")
    checked = lint_imports(copy)
    assert checked.returncode != 0
    assert "compress.strategies.distillation -> compress.measure.size" in checked.stdout


def test_a_circle_between_sibling_modules_fails(copy):
    """Two modules of one stage that import each other: allowed by the layers, not by the rule
    against circles."""
    _add_import(copy, "compress.strategies.base", "from compress.strategies import chain  # noqa",
                inside_function=True)
    checked = lint_imports(copy)
    assert checked.returncode != 0
    assert "No import circles" in checked.stdout and "BROKEN" in checked.stdout
    assert ".base -> .chain" in checked.stdout or ".chain -> .base" in checked.stdout


def test_a_family_that_uses_another_as_a_library_fails(copy):
    """Families are plugins: what two of them share lives in a shared module, so any one can
    be replaced or removed alone (pruning once borrowed distillation's student loop)."""
    _add_import(copy, "compress.strategies.pruning",
                "from compress.strategies import distillation  # noqa", inside_function=True)
    checked = lint_imports(copy)
    assert checked.returncode != 0
    assert "Strategy families never import each other BROKEN" in checked.stdout
    assert "compress.strategies.pruning -> compress.strategies.distillation" in checked.stdout


def _explains_its_size(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return "one piece" in docstring


def test_no_module_grows_past_600_lines_without_saying_why():
    long = {str(path.relative_to(ROOT)): n for path in sorted(PACKAGE.rglob("*.py"))
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and not _explains_its_size(path)}
    assert not long, f"split these by job, or say in the docstring why each is one piece: {long}"


def long_functions(package: Path) -> dict[str, int]:
    """Functions over ``MAX_FUNCTION_LINES`` whose docstring does not say why they are one piece."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES and \
                    "One function on purpose" not in (ast.get_docstring(node) or ""):
                found[f"{path.relative_to(package.parent)}:{node.name}"] = node.end_lineno - node.lineno + 1
    return found


def test_no_function_grows_past_80_lines_without_saying_why(tmp_path):
    assert not long_functions(PACKAGE), "split these, or say in the docstring why each is one piece"
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "compress").mkdir()
    (tmp_path / "compress" / "long.py").write_text(f'def grown():\n    """Does much."""\n{body}')
    assert long_functions(tmp_path / "compress") == {"compress/long.py:grown": MAX_FUNCTION_LINES + 2}


def test_every_stage_says_what_it_owns_and_what_it_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in docstring.lower() and len(docstring) > 120, init
