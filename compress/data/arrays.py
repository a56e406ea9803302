"""Arrays as data: an .npz of x and y (optionally x_test and y_test), numbers as they are or
token ids (texts), every check one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.common.errors import UserError
from compress.common.text import counted
from compress.data.builtin import CLASSIFIERS_ONLY, Dataset, TrainingData, split_indices
from compress.data.record import Preprocessing


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, pickles refused; any damage is one UserError."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise UserError(f"{path} holds a single array, not an .npz archive; save it with "
                            "numpy.savez(path, x=..., y=...)")
        with loaded:
            return dict(loaded)
    except UserError:
        raise
    except Exception as error:  # any damage (zip, zlib, header, pickles) is the file's, not ours
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} is not a readable .npz without pickles ({message}); save it with "
                        "numpy.savez(path, x=..., y=...) from numeric or text arrays") from None


def load_npz(path: Path, seed: int, tokens: bool) -> tuple[Dataset, Preprocessing]:
    arrays = read_npz(path)
    if "x" not in arrays or "y" not in arrays:
        raise UserError(f"{path} needs arrays named x and y (optionally x_test and y_test); "
                        f"it has {', '.join(arrays) or 'none'}")
    x, y = _npz_arrays(path, arrays["x"], arrays["y"])
    if tokens:
        x = _token_ids(path, arrays["x"], "x")
    record = Preprocessing(source=path.name, rows_read=len(x), missing_policy="error",
                           layout=_token_layout(x) if tokens else _layout(arrays["x"]))
    if "x_test" in arrays or "y_test" in arrays:
        if not {"x_test", "y_test"} <= set(arrays):
            raise UserError(f"{path}: give both x_test and y_test, or neither")
        x_test, y_test = _npz_arrays(path, arrays["x_test"], arrays["y_test"], suffix="_test")
        if tokens:
            x_test = _token_ids(path, arrays["x_test"], "x_test")
        record.rows_read += len(x_test)
        if x_test.shape[1:] != x.shape[1:]:
            raise UserError(f"{path}: x_test rows have shape {x_test.shape[1:]}, x rows {x.shape[1:]}")
        if _label_kind(y_test) != _label_kind(y):
            raise UserError(f"{path}: y holds {_label_kind(y)} labels but y_test {_label_kind(y_test)} "
                            "labels; save both with the same kind of label")
        unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y).tolist()), key=str)
        if unseen:
            raise UserError(f"{path}: y_test holds label(s) {', '.join(map(repr, unseen[:5]))} that y never "
                            "does; no model learns a class it never sees, so add training rows of it "
                            "or drop those test rows")
    else:
        x_test = y_test = None
    classes = sorted(set(np.unique(y).tolist()) | set([] if y_test is None else np.unique(y_test).tolist()))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in y.tolist()], dtype=np.int64)
    names = tuple(str(c) for c in classes)
    record.classes = list(names)
    if y_test is None:
        train, val, test = split_indices(y, seed, name=path.name, class_names=names)
        x_test, y_test = x[test], y[test]
    else:
        y_test = np.array([index[v] for v in y_test.tolist()], dtype=np.int64)
        train, val = split_indices(y, seed, name=path.name, with_test=False, class_names=names)
    vocabulary = int(max(x.max(initial=0), x_test.max(initial=0))) + 1 if tokens else None
    training = TrainingData(path.stem, x[train], y[train], x[val], y[val], names, vocabulary=vocabulary)
    return Dataset(training, x_test if tokens else x_test.astype(np.float32), y_test), record


def _token_ids(path: Path, x: np.ndarray, name: str) -> np.ndarray:
    """An .npz's ``x`` as token ids: (rows, length) non-negative integers, as int32."""
    if x.ndim != 2:
        raise UserError(f"{path}: token ids in {name} must be (rows, length), one sequence per row; "
                        f"got shape {x.shape}")
    if x.dtype.kind == "f" and (x != np.round(x)).any():
        raise UserError(f"{path}: {name} holds fractional numbers, not token ids; save integer ids")
    if x.size and x.min() < 0:
        raise UserError(f"{path}: {name} holds negative token ids (e.g. {int(x.min())}); ids start at 0, "
                        "the padding id")
    if x.size and x.max() >= 2**31 - 1:
        raise UserError(f"{path}: {name} holds token ids beyond int32 ({int(x.max())}); renumber them")
    return x.astype(np.int32)


def _token_layout(x: np.ndarray) -> str:
    """How an .npz's token ids are read, in words."""
    padding = float(np.mean(x == 0))
    return (f"x as token ids, sequences of {x.shape[1]} (ids 0 to {int(x.max(initial=0))}, "
            f"{padding:.0%} of positions the padding id 0)")


def _label_kind(y: np.ndarray) -> str:
    return {"U": "text", "S": "bytes"}.get(y.dtype.kind, "numeric")


def _layout(x: np.ndarray) -> str:
    """How an .npz's x is read, in words: no axis is ever added, so 8-bit (N, H, W) pixels
    would be sequences, and integer values are used as they are."""
    shape = x.shape[1:]
    if len(shape) == 1:
        read = f"x as {shape[0]} features per row"
    elif len(shape) == 2:
        read = f"x as sequences of {shape[0]} steps × {shape[1]} channels"
        if x.dtype.kind == "u":
            read += (f" (if these are grayscale images, save x with a channel axis: shape "
                     f"(N, {shape[0]}, {shape[1]}, 1))")
    else:
        read = f"x as {shape[0]}x{shape[1]} images with {counted(shape[2], 'channel')}"
    if x.dtype.kind in "iu" and x.size and int(x.max()) > 1:
        read += f"; its {x.dtype} values ({int(x.min())} to {int(x.max())}) used as they are, not scaled"
    return read


def _npz_arrays(path: Path, x: np.ndarray, y: np.ndarray, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Check one (x, y) pair of an .npz: numeric finite rows, one class label per row."""
    xname, yname = f"x{suffix}", f"y{suffix}"
    if x.ndim == 0 or y.ndim == 0:
        raise UserError(f"{path}: {xname} and {yname} must be arrays with one entry per row, "
                        f"got shapes {x.shape} and {y.shape}")
    if x.dtype.kind not in "fiub":
        raise UserError(f"{path}: {xname} must be numeric, got dtype {x.dtype}")
    if y.ndim != 1:
        raise UserError(f"{path}: {yname} must be one label per row, got shape {y.shape}")
    if y.dtype.kind not in "biufUS":
        raise UserError(f"{path}: {yname} must hold class labels (integers or strings), got dtype {y.dtype}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise UserError(f"{path}: {yname} contains NaN or inf; every row needs a class label")
    if y.dtype.kind == "f" and (y != np.round(y)).any():
        raise UserError(f"{path}: {yname} holds fractional numbers (e.g. {y[y != np.round(y)][0]:g}), "
                        f"a regression target; {CLASSIFIERS_ONLY}")
    if len(x) != len(y):
        raise UserError(f"{path}: {len(x)} rows in {xname} but {len(y)} labels in {yname}")
    if x.size == 0 and len(x):
        raise UserError(f"{path}: {xname} rows have shape {x.shape[1:]}, with no features; "
                        "give at least one feature per row")
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{path}: {xname} contains NaN or inf (or values beyond float32); clean or "
                        "drop those rows first")
    if x.ndim not in (2, 3, 4):  # features, sequences (length, channels), images (h, w, channels)
        raise UserError(f"{path}: {xname} must be (rows, features), (rows, length, channels) or "
                        f"(rows, height, width, channels), got shape {x.shape}")
    return x, y
