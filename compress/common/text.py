"""Wording shared by every stage: counts with their nouns, text on one line.
"""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` of ``noun``, in the plural unless one: "1 epoch", "3 files", "1,797 images"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line (every run of white space one space), cut at ``limit`` characters:
    how an error reaches a terminal and a row's ``reason``."""
    folded = " ".join(str(text).split())
    return folded if limit is None else folded[:limit]
