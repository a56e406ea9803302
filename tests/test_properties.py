"""Property tests: whatever a user feeds in, the answer is a result or a UserError, never a crash.

Each property draws inputs with Hypothesis: strategy specs, recommend budgets, CSV text,
.npz arrays and result rows.  Nothing here trains a model.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import string
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compress.cli import cli
from compress.common.errors import UserError
from compress.results.outdir import open_output
from compress.results.rows import FIELDS, read_results, write_results
from tests.rows import spine_rows

SETTINGS = {"deadline": None, "database": None,
            "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}


# (a) Strategy specs ------------------------------------------------------------------------


def _registry_names() -> list[str]:
    from compress.strategies import registry

    return sorted(registry())


def _param_names() -> list[str]:
    from compress.strategies import registry

    return sorted({p for cls in registry().values() for p in cls.param_names()})


_VALUES = st.one_of(
    st.integers(-3, 400).map(str),
    st.floats(0, 1).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "null", "NaN", "Infinity", "-Infinity", "1e400", "0x10", "",
                     "mlp:8", "cnn:8:16", "cnn:8,16:32", "mlp:", "mlp:0", "mlp:-1", "logits",
                     "[1]", "{}", '"s"', "a=b", "=", ":", ",", ">"]),
    st.text(alphabet=string.printable, max_size=8),
)


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """Mostly well-formed specs over real names and parameters, sometimes anything at all."""
    from compress.strategies import registry

    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=40))

    names = [*_registry_names(), "deep-compression", "*", "quantize-*", "nope", "prune-?"]
    stages = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        own = registry()[name].param_names() if name in registry() else []
        pool = own if own and draw(st.integers(0, 2)) else [*_param_names(), "bogus", " ", ""]
        keys = draw(st.lists(st.sampled_from(pool), max_size=3, unique=bool(own)))
        params = ",".join(f"{k}={draw(_VALUES)}" for k in keys)
        separator = draw(st.sampled_from([":", ":", ": ", "::"]))
        stages.append(f"{name}{separator}{params}" if params or not draw(st.integers(0, 3)) else name)
    return draw(st.sampled_from([">", ">", ">", " > ", ">>"])).join(stages)


@settings(max_examples=120, **SETTINGS)
@given(spec=spec_texts(), epochs=st.one_of(st.none(), st.integers(1, 3)))
def test_any_spec_is_strategies_or_a_user_error(spec, epochs):
    from compress.orchestrate.plan import plan_steps
    from compress.strategies import strategies_from_spec

    try:
        made = strategies_from_spec(spec)
    except UserError:
        made = None
    if made is not None:
        assert made and all(s.spec() for s in made)
    try:
        steps = plan_steps([spec], epochs)
    except UserError:
        return
    assert steps[0].role == "baseline"


# (b) recommend options ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("properties") / "run"
    open_output(folder, "run")
    write_results(folder, spine_rows())
    return folder


_BUDGETS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0.0, -0.0, -1.0, 1e-300, 1e300]), st.text(max_size=5))


@settings(max_examples=120, **SETTINGS)
@given(size=_BUDGETS, latency=_BUDGETS, drop=_BUDGETS,
       objective=st.one_of(st.none(), st.sampled_from(["size", "latency", "accuracy"]),
                           st.text(max_size=10)))
def test_any_recommend_options_exit_0_1_or_2_without_a_traceback(run_folder, size, latency, drop,
                                                                  objective):
    args = ["recommend", str(run_folder)]
    for option, value in (("--max-size-kib", size), ("--max-latency-us", latency),
                          ("--max-accuracy-drop", drop), ("--objective", objective)):
        if value is not None:
            args += [option, value if isinstance(value, str) else repr(value)]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2), result.exit_code
    assert "Traceback" not in result.stderr
    if result.exit_code:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("compress: ")


# (c) CSV files -----------------------------------------------------------------------------

_CELLS = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "NA", "null", "True", "false", "a", "b", "c",
                     "red", "blue", '"x,y"', '"', "2024-01-01", "1,5", "  ", "é", "\x00", "[1]"]),
    st.text(alphabet=string.ascii_letters + string.digits + " ;.-", max_size=6),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """A header and rows (labels from a few classes, so splits can succeed), or raw text."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.text(max_size=200))
    others = draw(st.lists(st.sampled_from(["x1", "x2", "color", "when", "", "x1 ", "1", "flag"]),
                           min_size=1, max_size=4))
    columns = [*(["label"] if draw(st.integers(0, 6)) else []), *others]
    columns.insert(draw(st.integers(0, len(columns))), columns.pop(0))
    n_rows = draw(st.sampled_from([0, 3, 45, 60, 60, 60]))
    classes = draw(st.sampled_from([("a", "b"), ("a", "b", "c"), ("0", "1"), ("x", "y", "z"), ("a",),
                                    ("a", "")]))
    kinds = {c: draw(st.sampled_from(["number", "number", "category", "integer", "boolean",
                                      "anything", "mostly number", "empty"])) for c in columns}
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lines = [",".join(columns)]
    for i in range(n_rows):
        cells = []
        for column in columns:
            kind = "label" if column == "label" else kinds[column]
            if kind == "label":
                cells.append(classes[i % len(classes)])
            elif kind == "number" or (kind == "mostly number" and i % 7):
                cells.append(f"{rng.normal():.3f}")
            elif kind == "integer":
                cells.append(str(int(rng.integers(-5, 5))))
            elif kind == "boolean":
                cells.append(str(bool(rng.integers(0, 2))))
            elif kind == "category":
                cells.append(str(rng.choice(["red", "blue", "green"])))
            elif kind == "empty":
                cells.append("")
            else:
                cells.append(draw(_CELLS) if i < 6 else f"{rng.normal():.3f}")
        lines.append(",".join(cells))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\n,,,\n"]))


@settings(max_examples=120, **SETTINGS)
@given(text=csv_texts(), target=st.sampled_from(["label"] * 9 + [None, "x1", "nope"]),
       missing=st.sampled_from(["error", "drop", "impute"] * 2 + ["guess"]))
def test_any_csv_loads_or_is_a_user_error(tmp_path, text, target, missing):
    from compress.data.userdata import load_file

    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        dataset, record = load_file(path, seed=0, target=target, missing=missing)
    except UserError:
        return
    x = dataset.training.x_train
    assert x.ndim == 2 and x.shape[1] >= 1 and x.dtype == np.float32
    assert np.isfinite(x).all() and np.isfinite(dataset.x_test).all()
    assert len(dataset.training.class_names) >= 2
    assert record.rows_read >= len(x)


# (d) .npz files ----------------------------------------------------------------------------

_DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_,
                           np.complex64, np.float16, "U3", "S2", "datetime64[D]"])


def _array(dtype, shape):
    return hnp.arrays(dtype, shape, elements=None if np.dtype(dtype).kind not in "fc" else
                      st.floats(allow_nan=True, allow_infinity=True, width=32).map(
                          lambda v: v if np.dtype(dtype).kind == "f" else complex(v, 0)))


@st.composite
def npz_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A valid (x, y[, x_test, y_test]) archive, then up to two parts broken in any way."""
    n = draw(st.sampled_from([0, 12, 40, 60]))
    features = draw(st.sampled_from([(3,), (4, 4), (4, 4, 1)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    labels = draw(st.sampled_from([np.int64, np.int8, np.float64, "U1", "S1", np.bool_]))
    classes = draw(st.sampled_from([1, 2, 3]))
    arrays = {"x": rng.normal(size=(n, *features)).astype(draw(st.sampled_from([np.float32, np.int64]))),
              "y": (np.arange(n) % classes).astype(labels)}
    if draw(st.booleans()):
        arrays["x_test"] = rng.normal(size=(10, *features)).astype(np.float32)
        arrays["y_test"] = (np.arange(10) % classes).astype(labels)
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from([*arrays, "other"]))
        change = draw(st.sampled_from(["drop", "random", "nan", "inf", "huge", "dtype", "rows"]))
        if change == "drop":
            arrays.pop(key, None)
        elif change == "random" or key not in arrays:
            shape = draw(hnp.array_shapes(min_dims=draw(st.sampled_from([0, 1, 2])), max_dims=4,
                                          min_side=0, max_side=4))
            arrays[key] = draw(_array(draw(_DTYPES), shape))
        elif change in ("nan", "inf", "huge") and arrays[key].size and arrays[key].dtype.kind in "biuf":
            value = arrays[key].astype(np.float64)
            value.flat[0] = {"nan": np.nan, "inf": -np.inf, "huge": 1e300}[change]
            arrays[key] = value
        elif change == "dtype":
            with contextlib.suppress(ValueError):  # text such as '' has no number to become
                arrays[key] = arrays[key].astype(draw(_DTYPES))
        elif arrays[key].ndim:
            arrays[key] = arrays[key][: len(arrays[key]) // 2]
        else:  # a 0-d array an earlier change made has no rows to halve
            arrays[key] = arrays[key].reshape(1)
    return arrays


@settings(max_examples=150, **SETTINGS)
@given(arrays=npz_arrays(), raw=st.sampled_from([None, b"", b"PK\x03\x04garbage", b"\x93NUMPY"]))
def test_any_npz_loads_or_is_a_user_error(tmp_path, arrays, raw):
    from compress.data.userdata import load_file

    path = tmp_path / "data.npz"
    if raw is not None:
        path.write_bytes(raw + b"\x00" * 3)
    else:
        np.savez(path, **arrays)
    try:
        dataset, _ = load_file(path, seed=0)
    except UserError:
        return
    x = dataset.training.x_train
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.ndim in (2, 3, 4)
    assert len(dataset.training.class_names) >= 2


def test_an_npz_with_a_pickled_object_array_is_a_user_error(tmp_path):
    from compress.data.userdata import load_file

    path = tmp_path / "objects.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}] * 40, dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
        archive.writestr("y.npy", buffer.getvalue())
    with pytest.raises(UserError, match="without pickles"):
        load_file(path, seed=0)


# (e) result rows ---------------------------------------------------------------------------

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 10**6), st.sampled_from([10**400, -10**3]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
              st.sampled_from(["ok", "failed", "skipped", "baseline", "technique", "control",
                               "0101", "synthetic", "digits"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=6,
)


def _plausible(field: str) -> st.SearchStrategy:
    """Values of the right type for a field, including its edge cases."""
    if field in ("status",):
        return st.sampled_from(["ok", "skipped", "failed"])
    if field in ("role",):
        return st.sampled_from(["baseline", "technique", "control", None])
    if field == "seed":
        return st.integers(0, 3)
    if field == "test_correct":
        return st.one_of(st.none(), st.text(alphabet="01", max_size=1200))
    if field in ("params", "env"):
        return st.one_of(st.none(), st.dictionaries(st.sampled_from(["cpu", "versions", "alpha", "epochs"]),
                                                    st.one_of(st.none(), st.text(max_size=3),
                                                              st.dictionaries(st.text(max_size=2),
                                                                              st.text(max_size=2))),
                                                    max_size=3))
    if field in ("class_names", "unaccounted_ops"):
        return st.one_of(st.none(), st.lists(st.text(max_size=3), max_size=3))
    if field == "teacher_cached":
        return st.one_of(st.none(), st.booleans())
    if field in ("run_id", "strategy", "spec", "label", "family", "control_of", "reason", "notes",
                 "dataset", "scenario", "preprocessing", "teacher_architecture", "artifact", "arithmetic",
                 "latency_warning"):
        return st.one_of(st.none(), st.sampled_from(["", "baseline", "distill", "quantize-int8", "r",
                                                     "synthetic", "int8", "shift", "x"]), st.text(max_size=5))
    return st.one_of(st.none(), st.sampled_from([0, 1, 0.0, 1.0, 0.5, 1e-9, 2, 30]),
                     st.floats(0, 1e7), st.integers(0, 10**7))


@st.composite
def result_lines(draw: st.DrawFn, junk: int = 3) -> list[str]:
    """The lines of a results.jsonl: a plausible run with a few fields replaced, one time in
    ``junk`` by any JSON at all, otherwise by values of the right type (edge cases included)."""
    rows = spine_rows()
    if draw(st.booleans()):
        rows += spine_rows(seed=1)
    lines = []
    for row in rows:
        if draw(st.integers(0, 3)) == 0:
            for field in draw(st.lists(st.sampled_from(list(FIELDS)), max_size=3)):
                row[field] = draw(_JSON if draw(st.integers(1, junk)) == 1 else _plausible(field))
        lines.append(json.dumps(row))
    if draw(st.integers(0, 6)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), json.dumps(draw(_JSON)))
    if draw(st.integers(0, 8)) == 0:
        lines.append(lines.pop()[: draw(st.integers(0, 40))])
    return lines


@settings(max_examples=8, **SETTINGS)
@given(lines=result_lines(junk=12))
def test_any_results_file_reports_or_is_a_user_error(tmp_path_factory, lines):
    root = tmp_path_factory.mktemp("rows")
    folder = root / "run"
    open_output(folder, "run")
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    try:
        rows = read_results(folder)
    except UserError:
        return
    assert rows and all(set(row) == set(FIELDS) for row in rows)
    from compress.report.build import build_report

    try:
        build_report(folder, out=root / "report")
    except UserError:
        return
    assert (root / "report" / "report.md").is_file()
    shutil.rmtree(root, ignore_errors=True)


def test_merged_runs_whose_labels_clash_still_report(tmp_path):
    from compress.report.build import build_report

    folders = []
    for name, lr in (("old", "0.0001"), ("new", "0.001")):
        rows = spine_rows(run_id=name)
        rows[5].update(spec=f"finetune:epochs=5,lr={lr},freeze=0", label="finetune")
        folders.append(tmp_path / name)
        open_output(folders[-1], "run")
        write_results(folders[-1], rows)
    report = (build_report(folders, out=tmp_path / "merged") / "report.md").read_text()
    assert "lr=0.0001" in report and "lr=0.001" in report  # the two told apart


@settings(max_examples=150, **SETTINGS)
@given(lines=result_lines())
def test_any_results_file_reads_or_is_a_user_error(tmp_path_factory, lines):
    """read_results alone, many more examples: every row it accepts has the types it promises."""
    folder = tmp_path_factory.mktemp("rows")
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    try:
        rows = read_results(folder)
    except UserError:
        return
    for row in rows:
        assert row["status"] in ("ok", "skipped", "failed")
        for field in ("size_bytes", "accuracy", "latency_us_p50", "speedup"):
            value = row[field]
            assert value is None or (not isinstance(value, bool) and math.isfinite(value))
    shutil.rmtree(folder, ignore_errors=True)

