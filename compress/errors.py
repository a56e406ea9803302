"""Errors a user can fix, kept apart from bugs so the CLI can tell them apart."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message says what was wrong and what to do instead.

    The CLI prints it on one line and exits with code 2, without a traceback.
    """
