"""What was done to a user's file, recorded with every result row: one record shared by the
readers of tables, texts and arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ONE_HOT_LIMIT = 10  # categorical columns with more distinct values are ordinal-encoded


@dataclass
class Preprocessing:
    """What was done to a user's file, recorded with every result row."""

    source: str
    rows_read: int
    missing_policy: str
    rows_dropped: int = 0
    cells_imputed: int = 0
    numeric: list[str] = field(default_factory=list)
    one_hot: list[str] = field(default_factory=list)
    ordinal: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # columns left out, each with why
    look_alike: list[str] = field(default_factory=list)  # labels that differ in case or spaces only
    layout: str = ""  # how an .npz's x was read, from its shape and type
    #: A table's fitted encoding as data (``fitted_encoding``): what a deployment must apply to
    #: a raw row before any of the run's models sees it.
    encoding: dict[str, Any] | None = None

    def summary(self) -> str:
        parts = [f"{self.rows_read} rows read from {self.source}"]
        if self.layout:
            parts.append(self.layout)
        if self.dropped:
            parts.append(f"columns left out: {', '.join(self.dropped)}")
        if self.look_alike:
            parts.append(f"**labels differing only in case or spaces are different classes: "
                         f"{', '.join(self.look_alike)}** (clean them if they are one class)")
        if self.rows_dropped:
            parts.append(f"{self.rows_dropped} rows with missing values dropped")
        if self.cells_imputed:
            parts.append(f"{self.cells_imputed} missing cells imputed (median or most frequent, "
                         "fitted on the train split)")
        if self.numeric:
            parts.append(f"{len(self.numeric)} numeric columns standardized")
        if self.one_hot:
            parts.append(f"one-hot: {', '.join(self.one_hot)}")
        if self.ordinal:
            parts.append(f"ordinal codes, standardized (over {ONE_HOT_LIMIT} values): "
                         f"{', '.join(self.ordinal)}")
        return "; ".join(parts)
