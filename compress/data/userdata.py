"""Your own data: .csv, .tsv, .parquet or .npz files (and image folders, see images.py) turned into a
Dataset, with every change counted.

Preprocessing (scaling, one-hot or ordinal encoding, imputation) is fitted on
the train split only and recorded, so a report says exactly what was done to
the data.  Nothing is dropped or filled silently: the default missing-value
policy is ``error``, and ``drop`` / ``impute`` report how many rows and cells
they touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from compress.common.errors import UserError, option
from compress.common.text import counted
from compress.data.arrays import load_npz
from compress.data.builtin import CLASSIFIERS_ONLY, Dataset, TrainingData, split_indices
from compress.data.images import ImageFolder, load_image_folder
from compress.data.options import MISSING_POLICIES, TextOptions
from compress.data.record import ONE_HOT_LIMIT, Preprocessing
from compress.data.text import TEXT_WORDS, Tokenizer, check_texts, fit_tokenizer, is_text

TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet")
#: Separators a spreadsheet's "CSV" export may use instead of commas (a European locale's ";"
#: goes with decimal commas).
OTHER_SEPARATORS = (";", "\t", "|")
_DECIMAL_COMMA = r"-?\d+,\d+"
#: Cells read as missing besides pandas' own ("", "NA", "n/a", "null", ...): "?" marks a missing
#: value in the UCI repository's tables, where many users' data comes from.
MISSING_MARKS = ["?"]


def load_file(
    path: Path | str, *, seed: int, target: str | None = None, missing: str = "error",
    image_size: tuple[int, int] | None = None, text: TextOptions | None = None,
) -> tuple[Dataset, Preprocessing | ImageFolder]:
    """A Dataset from a user's file or image folder, split by ``seed`` like the built-in ones;
    ``text`` says how texts are read (token ids in an .npz, a table's text column)."""
    path = Path(path)
    if missing not in MISSING_POLICIES:
        raise UserError(f"{option('missing')} must be one of {', '.join(MISSING_POLICIES)}, got {missing!r}")
    if path.is_dir():
        if _text_files(path):
            return _load_text_folder(path, seed, text or TextOptions())
        return load_image_folder(path, seed=seed, image_size=image_size)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise UserError(f"data file {path} is empty; it needs a header and rows")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path, seed, text is not None and text.tokens)
    if suffix in TABULAR_SUFFIXES:
        return _load_table(path, seed, target, missing, text or TextOptions())
    raise UserError(f"{path}: {option('data')} takes .csv, .tsv, .parquet or .npz files")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".tsv":
            return pd.read_csv(path, sep="\t", na_values=MISSING_MARKS)
        frame = pd.read_csv(path, na_values=MISSING_MARKS)
        header = str(frame.columns[0]) if frame.shape[1] == 1 else ""
        separator = next((sep for sep in OTHER_SEPARATORS if sep in header), None)
        if separator is None:
            return frame
        frame = pd.read_csv(path, sep=separator, na_values=MISSING_MARKS)
        text = frame.select_dtypes(exclude="number")
        if separator == ";" and any(text[c].dropna().astype(str).str.fullmatch(_DECIMAL_COMMA).all()
                                    for c in text):
            frame = pd.read_csv(path, sep=";", decimal=",", na_values=MISSING_MARKS)
        return frame
    except ImportError:
        raise UserError("reading .parquet needs pyarrow: pip install 'compress[parquet]'") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} cannot be read as a table ({message}); check its format") from None


def _load_table(path: Path, seed: int, target: str | None, missing: str,
                text: TextOptions) -> tuple[Dataset, Preprocessing]:
    frame = _read_table(path)
    if frame.empty:
        raise UserError(f"{path} has a header but no rows")
    if target is None:
        raise UserError(f"{path}: name the label column with {option('target')} (columns: "
                        f"{', '.join(map(str, frame.columns))})")
    if target not in frame.columns:
        raise UserError(f"{path}: no column {target!r}; columns are {', '.join(map(str, frame.columns))}")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise UserError(f"{path}: only the target column {target!r}; add feature columns")
    record = Preprocessing(source=path.name, rows_read=len(frame), missing_policy=missing)
    column = _text_column(path, features, text)
    if column is not None:
        return _load_texts(path, frame, target, column, seed, text, record)
    numeric = features.select_dtypes(include="number")
    if not np.isfinite(numeric.to_numpy(dtype=float, na_value=0.0)).all():
        bad = [c for c in numeric if np.isinf(numeric[c].to_numpy(dtype=float, na_value=0.0)).any()]
        raise UserError(f"{path}: infinite values in column(s) {', '.join(map(str, bad))}; "
                        "replace them with finite numbers or leave the cells empty")
    for column in features.columns:
        if pd.api.types.is_datetime64_any_dtype(features[column]) or _dates(features[column]):
            example = features[column].dropna().iloc[0]
            raise UserError(f"{path}: column {column!r} holds dates (e.g. {str(example)!r}), which no "
                            "encoding here would read as time; convert them to numbers (days since "
                            "a start, month, weekday) or drop the column")
        if features[column].map(lambda v: isinstance(v, (list, dict, tuple))).any():
            raise UserError(f"{path}: column {column!r} cannot be encoded as a feature; "
                            "convert it to numbers or categories, or drop it")
    _refuse_numbers_with_stray_text(path, frame, target)
    frame = _drop_uninformative(path, frame, target, record)
    frame, record = _apply_missing_policy(path, frame, target, missing, record)
    values = frame[target]
    if pd.api.types.is_float_dtype(values) and (values != values.round()).any():
        example = values[values != values.round()].iloc[0]
        raise UserError(f"{path}: column {target!r} holds fractional numbers (e.g. {example:g}), a "
                        f"regression target; {CLASSIFIERS_ONLY}")
    labels = values.astype(str)
    classes = sorted(labels.unique())
    record.classes = classes
    spellings: dict[str, list[str]] = {}
    for name in classes:
        spellings.setdefault(name.strip().casefold(), []).append(name)
    record.look_alike = [" / ".join(repr(n) for n in names) for names in spellings.values() if len(names) > 1]
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    features = frame.drop(columns=[target])
    flags = features.select_dtypes(include="bool").columns  # categories: imputers refuse bool dtype
    features[flags] = features[flags].astype(object)
    train, val, test = split_indices(y, seed, name=path.name, class_names=classes)
    transformer = _transformer(features, record)

    def float32(x: np.ndarray) -> np.ndarray:
        """Models run in 32-bit floats, whose range ends at 3.4e38: a value near it (finite in
        the file) can pass it once standardized."""
        with np.errstate(over="ignore", invalid="ignore"):
            narrowed = x.astype(np.float32)
        if not np.isfinite(narrowed).all():
            largest = max(numeric, key=lambda c: numeric[c].abs().max())
            raise UserError(f"{path}: values too large for 32-bit floats once standardized (column "
                            f"{largest!r} reaches {numeric[largest].abs().max():.3g}); rescale it")
        return narrowed

    x_train = float32(transformer.fit_transform(features.iloc[train]))
    record.encoding = fitted_encoding(transformer)

    def transform(rows: np.ndarray) -> np.ndarray:
        return float32(transformer.transform(features.iloc[rows]))

    training = TrainingData(path.stem, x_train, y[train], transform(val), y[val], tuple(classes))
    return Dataset(training, transform(test), y[test]), record


def _text_column(path: Path, features: pd.DataFrame, text: TextOptions) -> str | None:
    """The free-text column: the one named, else the one ``is_text`` finds (before any
    identifier or category rule sees it), else None."""
    if text.column is not None:
        if text.column not in features.columns:
            raise UserError(f"{path}: no feature column {text.column!r} for {option('text_column')}; "
                            f"columns are {', '.join(map(str, features.columns))}")
        return text.column
    found = [str(c) for c in features.columns if is_text(features[c], ONE_HOT_LIMIT)]
    if len(found) > 1:
        raise UserError(f"{path}: columns {', '.join(found)} all hold free text, and a text model reads "
                        f"one; name it with {option('text_column', 'NAME')}")
    if not found and (text.vocabulary is not None or text.length is not None):
        raise UserError(f"{path}: no column holds free text (at least {TEXT_WORDS} words in the "
                        f"median cell), so {option('vocabulary')} and {option('sequence_length')} "
                        f"have nothing to tokenize; name the text column with {option('text_column')}")
    return found[0] if found else None


def _load_texts(path: Path, frame: pd.DataFrame, target: str, column: str, seed: int,
                text: TextOptions, record: Preprocessing) -> tuple[Dataset, Preprocessing]:
    """A table's text column as token ids (``data.text``), the tokenizer fitted on the train
    split; the other feature columns are left out, since a text model reads one input."""
    others = [str(c) for c in frame.columns if c not in (column, target)]
    record.dropped = [f"{c} (a text model reads the text column {column!r} alone)" for c in others]
    frame = frame[[column, target]]
    empty = frame[target].isna() | frame[column].isna() | (frame[column].astype(str).str.strip() == "")
    if empty.any() and record.missing_policy == "drop":  # a text cannot be imputed
        record.rows_dropped = int(empty.sum())
        frame = frame[~empty].reset_index(drop=True)
    elif frame[target].isna().any():
        raise UserError(f"{path}: {counted(int(frame[target].isna().sum()), 'row')} without a label in "
                        f"{target!r}; pass {option('missing', 'drop')} to remove them")
    check_texts(path, frame[column], column)
    labels = frame[target].astype(str)
    classes = sorted(labels.unique())
    record.classes = classes
    y = labels.map({c: i for i, c in enumerate(classes)}).to_numpy()
    train, val, test = split_indices(y, seed, name=path.name, class_names=classes)
    texts = frame[column]
    tokenizer = fit_tokenizer(texts.iloc[train], column, vocabulary=text.vocabulary, length=text.length)
    x_train, _, cut = tokenizer.ids(texts.iloc[train])
    x_val, unknown, _ = tokenizer.ids(texts.iloc[val])
    x_test, _, _ = tokenizer.ids(texts.iloc[test])
    record.layout = (f"texts of column {column!r} as token ids: {tokenizer.chosen}; {unknown:.1%} of the "
                     f"validation split's words unknown, {cut:.1%} of the train split's texts cut")
    record.encoding = tokenizer.portable()
    training = TrainingData(path.stem, x_train, y[train], x_val, y[val], tuple(classes),
                            vocabulary=tokenizer.vocabulary)
    return Dataset(training, x_test, y[test]), record


#: A text folder's files: one text each.
TEXT_SUFFIX = ".txt"


def _text_files(root: Path) -> dict[str, list[Path]]:
    """A folder's class folders and their .txt files, when it holds texts and no images."""
    from compress.data.images import IMAGE_SUFFIXES

    found = {folder.name: sorted(folder.rglob(f"*{TEXT_SUFFIX}")) for folder in sorted(root.iterdir())
             if folder.is_dir() and not folder.name.startswith(".")}
    images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*") if p.is_file())
    return {} if images or not any(found.values()) else {k: v for k, v in found.items() if v}


def _load_text_folder(root: Path, seed: int, text: TextOptions) -> tuple[Dataset, Preprocessing]:
    """``DIR/<class>/<text>.txt``, one text per file, read as a table with a text column (the
    class folders of an image folder, the text rules of a table)."""
    from compress.data.images import TEST_FOLDER, TRAIN_FOLDER

    classes = _text_files(root)
    if {TRAIN_FOLDER, TEST_FOLDER} & set(classes):
        raise UserError(f"{root}: a text folder is read as DIR/<class>/<text>.txt; move the class "
                        f"folders of {TRAIN_FOLDER}/ and {TEST_FOLDER}/ into one folder (compress splits "
                        "it by the seed)")
    rows = []
    for label, files in classes.items():
        for file in files:
            try:
                rows.append((file.read_text(encoding="utf-8"), label))
            except UnicodeDecodeError:
                raise UserError(f"{file} is not UTF-8 text; save the texts as UTF-8") from None
    frame = pd.DataFrame(rows, columns=["text", "label"])
    record = Preprocessing(source=root.name, rows_read=len(frame), missing_policy="error")
    return _load_texts(root, frame, "label", "text", seed, text, record)


def fitted_encoding(transformer: ColumnTransformer) -> dict[str, Any]:
    """The fitted encoding as JSON-able data, in the models' input order: each column's missing
    value fill, mean and scale, or categories (one input each, one-hot), fitted on the train split."""
    inputs = []
    for kind, pipeline, columns in transformer.transformers_:
        if kind == "remainder" or not len(columns):
            continue
        steps = pipeline.named_steps
        for i, column in enumerate(columns):
            entry: dict[str, Any] = {"column": str(column), "kind": kind}
            if "simpleimputer" in steps:
                entry["fill"] = _plain(steps["simpleimputer"].statistics_[i])
            encoder = steps.get("onehotencoder") or steps.get("ordinalencoder")
            if encoder is not None:
                entry["categories"] = [_plain(c) for c in encoder.categories_[i]]
            if "standardscaler" in steps:
                scaler = steps["standardscaler"]
                entry.update(mean=float(scaler.mean_[i]), scale=float(scaler.scale_[i]))
            inputs.append(entry)
    return {"inputs": inputs}


def _plain(value: Any) -> Any:
    """A NumPy scalar as the JSON value it stands for."""
    return value.item() if isinstance(value, np.generic) else value


def encode_rows(encoding: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Raw table rows as the run's models take them, by ``fitted_encoding``'s record (or a text
    column's tokenizer, ``Tokenizer.portable``): what a deployment applies before the .tflite
    file (the models never saw raw units or raw text)."""
    if encoding.get("kind") == "text":
        tokenizer = Tokenizer.from_portable(encoding)
        if tokenizer.column not in frame.columns:
            raise UserError(f"the rows lack the text column {tokenizer.column!r}, which the models read")
        check_texts("the rows", frame[tokenizer.column], tokenizer.column)
        return tokenizer.ids(frame[tokenizer.column])[0]
    missing = [entry["column"] for entry in encoding["inputs"] if entry["column"] not in frame.columns]
    if missing:
        raise UserError(f"the rows lack column(s) {', '.join(missing)}, which the models take")
    parts = []
    for entry in encoding["inputs"]:
        values = frame[entry["column"]]
        if "fill" in entry:
            values = values.fillna(entry["fill"])
        elif values.isna().any():  # the run refused missing cells: there is no fill to apply
            raise UserError(f"column {entry['column']!r} has missing cells, which this run never "
                            "filled (it read its data with missing='error'); fill them first")
        if entry["kind"] == "one_hot":
            text = values.astype(str)
            parts += [(text == str(category)).to_numpy(dtype=np.float64) for category in entry["categories"]]
            continue
        if entry["kind"] == "ordinal":
            index = {str(category): i for i, category in enumerate(entry["categories"])}
            values = values.astype(str).map(index).fillna(-1)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        parts.append((numbers - entry["mean"]) / entry["scale"])
    return np.column_stack(parts).astype(np.float32)


#: A text column whose cells are numbers but for at most this share is a numeric column with typos.
STRAY_TEXT_SHARE = 0.1
#: An identifier: a text column different in every row, in a table of at least this many rows.
IDENTIFIER_ROWS = 20


#: What turns a number into text in a spreadsheet export: thousands separators (1,234 or 1'234
#: or 1 234), percent and currency signs, a short unit after the digits (12kg, 5 min).
NUMBER_DECORATION = r"(?<=\d)\s*[A-Za-zµ°]{1,3}$|[,'\s%$€£¥]"


#: Dates and times as spreadsheets and databases write them: 2024-01-31, 2024-01-31T08:00,
#: 31/01/2024, 1.31.24.
DATE_TEXT = (r"^\s*(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
             r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})\s*$")


def _dates(values: pd.Series) -> bool:
    """Whether a text column holds dates: as text they would be categories in alphabetical order,
    or, every one different, an identifier left out without a word about the time in them."""
    if pd.api.types.is_numeric_dtype(values):
        return False
    cells = values.dropna().astype(str)
    return bool(len(cells)) and cells.str.match(DATE_TEXT).mean() >= 1 - STRAY_TEXT_SHARE


def _refuse_numbers_with_stray_text(path: Path, frame: pd.DataFrame, target: str) -> None:
    """A numeric column with a few text cells ("n/a", "12kg"), or numbers all written with
    separators or units ("1,234", "12%"), would silently become an ordinal category, its numbers
    reduced to their alphabetical order: name the cells instead."""
    for column in frame.columns:
        if column == target or pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].dropna().astype(str)
        stray = values[pd.to_numeric(values, errors="coerce").isna()]
        if len(values) and 0 < len(stray) <= STRAY_TEXT_SHARE * len(values):
            shown = ", ".join(repr(v) for v in sorted(set(stray))[:3])
            raise UserError(f"{path}: column {column!r} holds numbers except {len(stray)} cells ({shown}); "
                            "correct them, or empty them to treat them as missing")
        plain = values.str.replace(NUMBER_DECORATION, "", regex=True)
        numbers = pd.to_numeric(plain, errors="coerce").notna()
        decorated = values[numbers & (plain != values)]
        if len(values) and len(stray) > STRAY_TEXT_SHARE * len(values) and \
                numbers.sum() >= (1 - STRAY_TEXT_SHARE) * len(values):
            shown = ", ".join(repr(v) for v in list(dict.fromkeys(decorated))[:3])
            raise UserError(f"{path}: column {column!r} holds numbers written with separators, units or "
                            f"signs ({shown}), which would be read as text categories in alphabetical "
                            "order; write them as plain numbers (1234.5)")


def _drop_uninformative(path: Path, frame: pd.DataFrame, target: str,
                        record: Preprocessing) -> pd.DataFrame:
    """Leave out what cannot inform a classifier, and say so: a column with one value in every
    row, a text column different in every row (an identifier, which a teacher could only
    memorize), and a row number (consecutive integers, as ``DataFrame.to_csv`` writes its
    index), which in a file sorted by class would hand the teacher the label."""
    why = {}
    for column in frame.columns:
        values = frame[column]
        if column == target or values.isna().all():  # an empty one is named by the missing check
            continue
        if values.nunique(dropna=False) == 1:
            why[column] = "one value"
        elif not pd.api.types.is_numeric_dtype(values) and len(values) >= IDENTIFIER_ROWS and \
                values.nunique() == len(values):
            why[column] = "every value different: an identifier"
        elif _row_number(values):
            why[column] = "consecutive integers: a row number"
    record.dropped = [f"{column} ({reason})" for column, reason in why.items()]
    if len(why) == frame.shape[1] - 1:
        raise UserError(f"{path}: no informative feature column ({', '.join(record.dropped)}); add "
                        "columns that vary from row to row")
    return frame.drop(columns=list(why))


def _row_number(values: pd.Series) -> bool:
    """Whether a column counts rows: distinct integers filling a range, in a file long enough
    that a real feature would repeat a value (``IDENTIFIER_ROWS``)."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    if len(values) < IDENTIFIER_ROWS or values.isna().any() or values.nunique() != len(values):
        return False
    numbers = values.to_numpy(dtype=float)
    return bool(np.all(numbers == np.round(numbers)) and numbers.max() - numbers.min() == len(values) - 1)


def _apply_missing_policy(path: Path, frame: pd.DataFrame, target: str, missing: str,
                          record: Preprocessing) -> tuple[pd.DataFrame, Preprocessing]:
    holes = frame.isna()
    cells, rows = int(holes.to_numpy().sum()), int(holes.any(axis=1).sum())
    if cells == 0:
        return frame, record
    columns = [str(c) for c in frame.columns if holes[c].any()]
    empty = [str(c) for c in frame.columns if c != target and holes[c].all()]
    if empty:  # whatever the policy: dropping rows would drop them all, imputing has nothing to go on
        raise UserError(f"{path}: column(s) {', '.join(empty)} have no values at all; drop them from "
                        "the file (nothing can be imputed from an empty column)")
    if missing == "error":
        raise UserError(f"{path}: {cells} missing cells in {rows} rows (columns: {', '.join(columns)}); "
                        f"pass {option('missing', 'drop')} to remove those rows or "
                        f"{option('missing', 'impute')} to fill them")
    if missing == "drop":
        record.rows_dropped = rows
        return frame.dropna().reset_index(drop=True), record
    unlabeled = int(frame[target].isna().sum())  # a row without a label cannot be imputed
    record.rows_dropped = unlabeled
    record.cells_imputed = cells - int(holes[frame[target].isna()].to_numpy().sum())
    return frame[frame[target].notna()].reset_index(drop=True), record


def _transformer(features: pd.DataFrame, record: Preprocessing) -> ColumnTransformer:
    """Standardize numbers; one-hot small categoricals, ordinal codes (standardized) beyond;
    impute if allowed."""
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])
               and not pd.api.types.is_bool_dtype(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    one_hot = [c for c in categorical if features[c].nunique() <= ONE_HOT_LIMIT]
    ordinal = [c for c in categorical if c not in one_hot]
    record.numeric, record.one_hot, record.ordinal = (list(map(str, numeric)), list(map(str, one_hot)),
                                                      list(map(str, ordinal)))
    impute = record.missing_policy == "impute"

    def steps(*parts: Any, strategy: str) -> Any:
        # keep_empty_features: a column empty only in the train split stays a (constant) feature
        imputer = SimpleImputer(strategy=strategy, keep_empty_features=True)
        return make_pipeline(*((imputer,) if impute else ()), *parts)

    return ColumnTransformer(
        [
            ("numeric", steps(StandardScaler(), strategy="median"), numeric),
            ("one_hot", steps(OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                              strategy="most_frequent"), one_hot),
            # Codes 0..K beside z-scores would dominate the inputs, and int8's one input scale.
            ("ordinal", steps(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                              StandardScaler(), strategy="most_frequent"), ordinal),
        ],
        remainder="drop",
    )
