"""The data options' choices, in one light module: the command line declares them and the run
settings and the table reader check them, without importing pandas or scikit-learn."""

from __future__ import annotations

#: What a table's missing cells do: stop with one line, drop their rows, or impute them.
MISSING_POLICIES = ("error", "drop", "impute")
