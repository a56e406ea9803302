"""One output-folder policy for every command that writes a folder.

A command writes only into a new folder, an empty one, or one this tool made
for the same kind of command (a marker file says which).  Anything else is a
one-line error before a byte is written, so a user's files and another
command's results are never touched.  ``--overwrite`` builds the new result in
a hidden sibling folder and swaps it in at the end: no stale file survives,
and an interrupted overwrite leaves the old result whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from compress.common.errors import UserError, option
from compress.common.fileio import current_umask, write_atomic

MARKER = ".compress.json"
KINDS = ("run", "sweep", "tune", "report", "sensitivity")
#: What folders written before the marker existed hold, by kind.
_LEGACY = {"results.jsonl": "run"}


def folder_kind(path: Path) -> str | None:
    """The kind of command that made ``path``, or None for a folder this tool did not make."""
    marker = path / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (ValueError, OSError, AttributeError):
            return None
        return kind if kind in KINDS else None
    if (path / "jobs").is_dir() and (path / "results.jsonl").is_file():
        return "sweep"
    return next((kind for name, kind in _LEGACY.items() if (path / name).is_file()), None)


def _writable_parent(path: Path) -> None:
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot create {path}: {parent} is not a writable folder; "
                        f"choose another {option('out')}")


def check_output(path: Path, kind: str, *, overwrite: bool = False, reuse: bool = False) -> None:
    """Refuse, with one line, any folder this command may not write into.

    ``reuse``: the command updates its own kind of folder in place (a sweep resumes,
    a report is rebuilt).  ``overwrite``: a folder of the same kind is replaced whole.
    """
    if path.exists() and not path.is_dir():
        raise UserError(f"{option('out')} {path} is a file, not a folder; choose a folder")
    if not path.exists():
        _writable_parent(path)
        return
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {path} (permission denied); choose a writable {option('out')}")
    if not any(path.iterdir()):
        return
    found = folder_kind(path)
    if found is None:
        raise UserError(f"{path} is not empty and was not made by compress; choose a new or "
                        f"empty {option('out')} (nothing in it was changed)")
    if found != kind:
        raise UserError(f"{path} holds a compress {found}, not a {kind}; choose another {option('out')} "
                        "(nothing in it was changed)")
    if not (reuse or overwrite):
        raise UserError(f"{path} already holds a {kind}; choose another {option('out')} or pass "
                        f"{option('overwrite', True)}")


@dataclass
class Output:
    """Where a command writes, and how its result becomes the folder the user named."""

    target: Path
    kind: str
    folder: Path  # the target itself, or a hidden sibling that replaces it at the end
    created: bool = False  # the target did not exist before
    found: frozenset[str] = frozenset()  # what the target held before (``reuse``)

    @property
    def staged(self) -> bool:
        return self.folder != self.target

    def commit(self) -> Path:
        """Make the result the target: swap a staged folder in, removing the old one."""
        if self.staged:
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            if self.target.exists():
                os.replace(self.target, old)
            os.replace(self.folder, self.target)
            shutil.rmtree(old, ignore_errors=True)
            self.folder = self.target
        return self.target

    def discard(self) -> None:
        """Undo the command (its input proved bad late): leave the target as it was found."""
        if self.staged or self.created:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        for entry in self.folder.iterdir():
            if entry.name in self.found:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def set_aside(self) -> Path:
        """An interrupted overwrite: keep the old result whole and the partial one beside it."""
        if not self.staged:
            return self.target
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        partial = self.target.with_name(f"{self.target.name}-interrupted-{stamp}")
        os.replace(self.folder, partial)
        self.folder = partial
        return partial


def open_output(path: Path, kind: str, *, overwrite: bool = False, reuse: bool = False) -> Output:
    """Check ``path`` (see ``check_output``) and create the folder to write into, marked."""
    check_output(path, kind, overwrite=overwrite, reuse=reuse)
    replace = overwrite and path.is_dir() and any(path.iterdir()) and not reuse
    created = not path.exists()
    found = frozenset() if created or replace else frozenset(e.name for e in path.iterdir())
    try:
        if replace:
            folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
            os.chmod(folder, 0o777 & ~current_umask())
        else:
            path.mkdir(parents=True, exist_ok=True)
            folder = path
        write_atomic(folder / MARKER, json.dumps({"kind": kind}) + "\n")
    except OSError as error:
        raise UserError(f"cannot write to {path} ({error.strerror}); choose a writable "
                        f"{option('out')}") from None
    return Output(path, kind, folder, created, found)

