"""The data options' choices, in one light module: the command line declares them and the run
settings and the table reader check them, without importing pandas or scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

#: What a table's missing cells do: stop with one line, drop their rows, or impute them.
MISSING_POLICIES = ("error", "drop", "impute")


@dataclass(frozen=True)
class TextOptions:
    """How texts are read: token ids in an .npz, or a table's free-text column tokenized (every
    field None or False: detected and chosen from the data by ``data.text``'s stated rules)."""

    tokens: bool = False  # an .npz's integer x holds token ids, not numbers
    column: str | None = None  # a table's free-text column
    vocabulary: int | None = None  # the tokenizer's vocabulary, padding and unknown included
    length: int | None = None  # tokens per text: longer texts cut, shorter ones padded
