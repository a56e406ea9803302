from __future__ import annotations

import csv
import json

import pytest

from compress.common.errors import UserError
from compress.measure.latency import SPAN_SECONDS
from compress.results.rows import FIELDS, SCHEMA_VERSION, environment, new_row, read_results, write_results
from tests.rows import fake_row


def test_rows_round_trip_through_jsonl_and_csv(tmp_path):
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.5),
            new_row(strategy="distill", spec="distill", seed=0, status="failed", reason="boom",
                    params={"alpha": 0.1})]
    write_results(tmp_path, rows)
    assert read_results(tmp_path / "results.jsonl") == rows
    assert read_results(tmp_path) == rows
    with open(tmp_path / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(FIELDS)
    assert json.loads(table[1]["params"]) == {"alpha": 0.1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_every_row_has_every_field_and_the_schema_version():
    row = new_row(strategy="x")
    assert set(row) == set(FIELDS) and row["schema_version"] == SCHEMA_VERSION
    with pytest.raises(KeyError):
        new_row(not_a_field=1)


def test_unreadable_results_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no results file"):
        read_results(tmp_path / "missing.jsonl")
    bad = tmp_path / "results.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(UserError, match="not valid JSON"):
        read_results(bad)
    bad.write_text(json.dumps({"schema_version": 99}) + "\n")
    with pytest.raises(UserError, match="schema_version 99"):
        read_results(bad)


def test_environment_records_threads_timing_span_and_versions(monkeypatch):
    env = environment(threads=3)
    assert env["inference_threads"] == 3 and env["cores"] >= 1
    assert env["versions"]["tensorflow"] and env["versions"]["ai-edge-litert"]
    monkeypatch.delenv("COMPRESS_LATENCY_SPAN", raising=False)
    assert environment(threads=1)["latency_span_seconds"] == SPAN_SECONDS
    monkeypatch.setenv("COMPRESS_LATENCY_SPAN", "0.5")
    assert environment(threads=1)["latency_span_seconds"] == 0.5
