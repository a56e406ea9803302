"""One output-folder policy: never write into a folder that is not this command's own."""

from __future__ import annotations

import os
import stat

import pytest

from compress.common.errors import UserError
from compress.common.fileio import write_atomic
from compress.results.outdir import check_output, open_output


def test_a_new_or_empty_folder_is_fine(tmp_path):
    check_output(tmp_path / "new", "run")
    (tmp_path / "empty").mkdir()
    assert open_output(tmp_path / "empty", "run").folder == tmp_path / "empty"


def test_a_users_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "report.md").write_text("mine")
    for kind in ("run", "sweep", "report"):
        with pytest.raises(UserError, match="not made by compress"):
            check_output(tmp_path, kind, overwrite=True)
    assert (tmp_path / "report.md").read_text() == "mine"


def test_another_kind_of_compress_folder_is_refused(tmp_path):
    open_output(tmp_path / "run", "run")
    with pytest.raises(UserError, match="holds a compress run, not a sweep"):
        check_output(tmp_path / "run", "sweep", reuse=True)


def test_an_earlier_run_needs_overwrite_which_swaps_in_a_clean_folder(tmp_path):
    target = tmp_path / "run"
    first = open_output(target, "run")
    write_atomic(first.folder / "stale.tflite", b"old")
    with pytest.raises(UserError, match="pass overwrite=True"):
        check_output(target, "run")
    second = open_output(target, "run", overwrite=True)
    assert second.staged and (target / "stale.tflite").exists()  # the old run is whole until the end
    write_atomic(second.folder / "new.tflite", b"new")
    second.commit()
    assert sorted(p.name for p in target.iterdir()) == [".compress.json", "new.tflite"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_interrupted_overwrite_keeps_the_old_result(tmp_path):
    target = tmp_path / "run"
    write_atomic(open_output(target, "run").folder / "results.jsonl", "old")
    staged = open_output(target, "run", overwrite=True)
    partial = staged.set_aside()
    assert (target / "results.jsonl").read_text() == "old"
    assert partial.name.startswith("run-interrupted-")


def test_a_file_or_an_unwritable_parent_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_output(tmp_path / "file", "run")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(UserError, match="writable"):
            check_output(locked / "out", "run")


def test_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.json", "{}")
        folder = open_output(tmp_path / "run", "run").folder
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((folder / ".compress.json").stat().st_mode) == 0o644


def test_discarding_leaves_the_target_as_it_was_found(tmp_path):
    """A run whose input proves bad late (a weak teacher a worker trained) writes nothing."""
    new = open_output(tmp_path / "new" / "run", "run")
    write_atomic(new.folder / "student.tflite", b"x")
    new.discard()
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "empty").mkdir()
    empty = open_output(tmp_path / "empty", "run")
    (empty.folder / "logs").mkdir()
    empty.discard()
    assert (tmp_path / "empty").is_dir() and not list((tmp_path / "empty").iterdir())
    write_atomic(open_output(tmp_path / "earlier", "run").folder / "results.jsonl", "old")
    replaced = open_output(tmp_path / "earlier", "run", overwrite=True)
    replaced.discard()
    assert (tmp_path / "earlier" / "results.jsonl").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "empty", "new"]
