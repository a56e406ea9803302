"""Wording shared by every stage: counts with their nouns.
"""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` of ``noun``, in the plural unless one: "1 epoch", "3 files", "1,797 images"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
