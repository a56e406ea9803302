"""Errors a user can fix, kept apart from bugs so the CLI can tell them apart, and the options
they name spelled the way the user gave them."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence


class UserError(ValueError):
    """Bad input: the message says what was wrong and what to do instead.

    The CLI prints it on one line and exits with code 2, without a traceback.
    """


#: Whether options are named as command-line flags (``--max-size-kib``) or as the Python
#: keywords of ``compress.compare`` and friends (``max_size_kib``).  The CLI, the report (a
#: document that names commands) and worker processes of a CLI run set it.
_FLAGS = contextvars.ContextVar("compress_option_spelling", default=False)

#: Keywords whose flag is not the keyword with dashes.
_FLAG_NAMES = {"teacher_architecture": "--teacher-arch", "strategies": "--strategy",
               "time_budget_min": "--time-budget", "max_trials": "--trials"}


def flag_names_in_use() -> bool:
    """Whether options are being named as command-line flags (for a worker process to inherit)."""
    return _FLAGS.get()


@contextlib.contextmanager
def flag_names(flags: bool = True) -> Iterator[None]:
    """Within this block, ``option`` names command-line flags (or, with False, keywords)."""
    token = _FLAGS.set(flags)
    try:
        yield
    finally:
        _FLAGS.reset(token)


def set_flag_names(flags: bool) -> None:
    """Set the spelling for the rest of this process: a worker of a CLI run names flags too."""
    _FLAGS.set(flags)


def option(name: str, value: object = None) -> str:
    """An option, with a value if given, as the user gave it: ``--missing drop``,
    ``--allow-weak-teacher`` and ``--strategy a --strategy b`` on the command line;
    ``missing='drop'``, ``allow_weak_teacher=True`` and ``strategies=['a', 'b']`` from Python.
    ``name`` is the Python keyword."""
    several = isinstance(value, Sequence) and not isinstance(value, str)
    if _FLAGS.get():
        flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        if value is None or value is True:
            return flag
        return " ".join(f"{flag} {_number(item) or item}" for item in (value if several else [value]))
    if value is None:
        return name
    return f"{name}={list(value) if several else _number(value) or repr(value)}"


def _number(value: object) -> str | None:
    """A float as the user would type it (64, not 64.0); None for anything else."""
    return f"{value:g}" if isinstance(value, float) else None
