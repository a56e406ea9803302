"""Shared fixtures: an isolated teacher cache and one tiny trained problem per session."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before compress is imported anywhere: tests never touch the user's real cache.
os.environ["COMPRESS_CACHE_DIR"] = tempfile.mkdtemp(prefix="compress-test-cache-")
# `compress run` trains in one worker per core by default; the suite's many small runs stay in
# their own process (spawning TensorFlow workers costs seconds a run).  Tests of the worker
# pool ask for it explicitly.
os.environ["COMPRESS_JOBS"] = "1"
# Latency rounds span 3 s by default, to outlast a slowed host core; the suite's many runs
# check what is measured, not how steadily, so they time just their 30 rounds.  Tests of the
# span pass it explicitly.
os.environ["COMPRESS_LATENCY_SPAN"] = "0"


@pytest.fixture(scope="session")
def tiny():
    """(training data, teacher, architecture) on the synthetic data, trained for 2 epochs."""
    from compress.testing import tiny_problem

    return tiny_problem("synthetic", epochs=2)


@pytest.fixture(scope="session")
def tiny_digits():
    from compress.testing import tiny_problem

    return tiny_problem("digits", epochs=1)
