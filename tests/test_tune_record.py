"""tune.json through its record: what ``compress tune`` writes reads back field for field, files
written before the record existed still read, and a damaged one is one line."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from compress.common.errors import UserError
from compress.orchestrate.tune_trials import Trial
from compress.report.document import Document
from compress.report.sections import tune_section
from compress.results.rows import TUNE_FILE
from compress.results.tune_record import TUNE_SCHEMA_VERSION, TrialRecord, TuneRecord

INT8 = {"number": 0, "spec": "quantize-int8", "label": "int8", "stages": 1, "status": "ok", "reason": None,
        "val_accuracy": 0.9, "drop_pp": 0.5, "size_bytes": 4000, "size_gzip_bytes": 2100, "macs": 100,
        "speedup": None, "train_seconds": 1.5, "reused": False, "key": "abc"}
FAILED = {**dict.fromkeys(INT8), "number": 1, "spec": "prune", "label": "prune", "stages": 1,
          "status": "failed", "reason": "boom", "reused": False}
#: The keys of the first tune.json (before the slowdown limit, the confirmation and the search's
#: per-family counts): an old file has no schema_version.
OLD = {
    "objective": "size", "max_accuracy_drop": 1, "time_budget_min": 5,
    "chosen_spec": "quantize-int8", "chosen_label": "int8", "objective_value": 2100.0, "validation": INT8,
    "test": {"seeds": 2, "accuracy": 0.89, "teacher_accuracy": 0.895, "drop_pp": 0.5,
             "times_smaller_gzip": 3.9, "times_smaller_raw": 3.8, "speedup": None},
    "test_meets_budget": True,
    "teacher": {"val_accuracy": 0.905, "size_bytes": 16000, "size_gzip_bytes": 8200,
                "architecture": "mlp:32"},
    "front": ["quantize-int8"], "final": ["quantize-int8"],
    "trials": [INT8, FAILED],
    "search": {"sampler": "optuna TPESampler", "seconds": 60.0, "reused": 0, "stopped": "2 trials",
               "space": {"prune": {"sparsity": {"low": 0.5, "high": 0.9}}}},
}


def _current() -> dict:
    """A tune.json as today's tune writes it: every key (a fresh copy, for a test to damage)."""
    trial = {**INT8, "family": "quantization", "screen": [3, 2, 180], "fits": True,
             "fit": "arena 3.8 KiB of 192.0 KiB, flash 4.0 KiB of 768.0 KiB"}
    return copy.deepcopy({
        **OLD, "schema_version": TUNE_SCHEMA_VERSION, "max_slowdown": 1.0, "device": "nrf52840",
        "validation": trial, "trials": [trial, {**FAILED, "family": "pruning", "screen": None,
                                                "fits": None, "fit": None}],
        "confirmation": {"quantize-int8": {
            "seeds": [0, 1], "drops_pp": [0.5, None], "pooled_seeds": [1], "discordant": [4, 2],
            "n": 180, "drop_pp": 1.1111, "upper_pp": 2.4, "confidence": 0.8, "within_budget": False}},
        "search": {**OLD["search"], "widened": 1, "batch": 8, "validation_rows": 180,
                   "validation_only_seeds": [3], "seeds_left_out": {"4": "weak teacher"},
                   "resolve": {"discordance": 0.025, "confidence": 0.8},
                   "families": {"quantization": {"proposals": 2, "trained": 1, "admissible": 1,
                                                 "plausible": 1, "best": "int8", "best_value": 2100.0,
                                                 "best_drop_pp": 0.5}}},
    })


def test_a_record_round_trips_through_its_file(tmp_path):
    record = TuneRecord.from_dict(_current())
    record.write(tmp_path)
    assert TuneRecord.read(tmp_path) == record
    saved = json.loads((tmp_path / TUNE_FILE).read_text())
    assert saved == _current()  # the same keys and values as before the record existed
    assert record.confirmation["quantize-int8"].discordant == (4, 2)
    assert record.search.families["quantization"].plausible == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically


def test_a_file_from_before_the_schema_version_reads_with_defaults(tmp_path):
    (tmp_path / TUNE_FILE).write_text(json.dumps(OLD))
    record = TuneRecord.read(tmp_path)
    assert record.schema_version == 1 and record.max_slowdown is None and record.confirmation == {}
    assert record.trials[0].screen is None and record.search.families == {}
    assert record.search.resolve is None and record.search.validation_rows == 0
    text = Document("t", tune_section(record)).markdown()
    assert "**Chosen:** int8 (`quantize-int8`)" in text and "Trials per family" not in text


def test_the_report_reads_every_part_of_a_current_file():
    text = Document("t", tune_section(TuneRecord.from_dict(_current()))).markdown()
    assert "never slower than the teacher" in text and "| quantization |" in text
    assert "seed 3 was added for this alone" in text and "the confirmation pools 180 paired rows" in text


def test_a_trial_reads_back_from_json_as_its_record():
    trial = Trial(0, "a", "a", 1, "ok", drop_pp=0.5, screen=(3, 2, 180))
    saved = json.loads(json.dumps(dataclasses.asdict(trial)))  # the screen becomes a list
    assert TrialRecord.from_dict(saved) == TrialRecord(**dataclasses.asdict(trial))


def _with(path: str, value: object) -> dict:
    """Today's file with one value, at a dotted path, replaced (or removed, for ...)."""
    data = _current()
    *parents, last = path.split(".")
    inner = data
    for key in parents:
        inner = inner[int(key)] if isinstance(inner, list) else inner[key]
    if value is ...:
        del inner[last]
    else:
        inner[last] = value
    return data


@pytest.mark.parametrize(("data", "problem"), [
    ("{not json", "is not valid JSON; re-run the same compress tune to rewrite it"),
    ([], "is damaged (it is [], not an object)"),
    (_with("test.accuracy", "0.89"), 'is damaged (test.accuracy is "0.89", not a number)'),
    (_with("trials.1.stages", 1.5), "is damaged (trials[1].stages is 1.5, not a whole number)"),
    (_with("search", ...), "is damaged (search is missing)"),
    (_with("teacher.size_gzip_bytes", True),
     "is damaged (teacher.size_gzip_bytes is true, not a whole number)"),
    (_with("confirmation.quantize-int8.discordant", [4]),
     "is damaged (confirmation['quantize-int8'].discordant holds 1 items, not 2)"),
    (_with("schema_version", 99), "has schema version 99, and this compress reads up to 1; upgrade compress"),
])
def test_a_damaged_file_is_one_line(tmp_path, data, problem):
    (tmp_path / TUNE_FILE).write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(UserError) as caught:
        TuneRecord.read(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / TUNE_FILE)) and problem in message and "\n" not in message


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match=f"no tune.json in {tmp_path}; re-run the same compress tune"):
        TuneRecord.read(tmp_path)
