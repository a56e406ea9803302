"""Deployment targets: profiles, what fits them, and a run and a recommendation for one."""

from __future__ import annotations

import pytest

import compress
from compress.analysis.devices import KIB, MIB, PROFILES, Device, fits, parse_device
from compress.analysis.recommend import NothingQualifies, recommend
from compress.common.errors import UserError
from compress.measure.micro import micro_unavailable


def test_profiles_and_custom_devices_parse():
    assert parse_device("nRF52840") == PROFILES["nrf52840"] and PROFILES["nrf52840"].ram == 256 * KIB
    custom = parse_device("mcu:ram=96k,flash=1.5m,int8=no,headroom=0.1")
    assert (custom.ram, custom.flash, custom.int8, custom.headroom) == (96 * KIB, int(1.5 * MIB), False, 0.1)
    assert custom.arena_limit == int(96 * KIB * 0.9)
    assert parse_device("mcu:ram=65536,flash=1mib").ram == 65536
    assert not parse_device("phone").micro and parse_device(None) is None


@pytest.mark.parametrize(("text", "message"), [
    ("arduino", "is not a device; choose one of phone, server"),
    ("mcu:ram=-1k,flash=1m", "is not a size above 0"),
    ("mcu:ram=1x,flash=1m", "ram='1x' is not a size above 0"),
    ("mcu:ram=1k", "needs flash=SIZE"),
    ("mcu:ram=1k,flash=1m,int8=maybe", "int8 must be yes or no"),
    ("mcu:ram=1k,flash=1m,headroom=1", "headroom is a share from 0 to below 1"),
    ("mcu:ram=1k,flash=1m,colour=red", "'colour=red' is not one of ram=SIZE"),
])
def test_a_bad_device_is_one_line(text, message):
    with pytest.raises(UserError, match=message) as refused:
        parse_device(text)
    assert "\n" not in str(refused.value)


def _row(**fields):
    return {"micro_runs": True, "micro_arena_bytes": 100 * KIB, "micro_flash_bytes": 500 * KIB,
            "io_type": "int8", **fields}


def test_fits_says_by_how_much_and_why():
    board = Device("board", ram=256 * KIB, flash=1 * MIB, int8=True, micro=True, headroom=0.25)
    assert fits(_row(), board) == (True, "arena 100.0 KiB of 192.0 KiB, flash 500.0 KiB of 768.0 KiB")
    too_big, why = fits(_row(micro_arena_bytes=200 * KIB), board)
    assert not too_big and "its arena needs 200.0 KiB, 8.0 KiB over the 192.0 KiB" in why
    assert fits(_row(io_type="float32"), board) == (False, "its inputs and outputs are float32, not int8")
    assert fits(_row(micro_runs=False, micro_reason="TILE missing"), board) == (False, "TILE missing")
    assert fits(_row(micro_runs=None), board)[0] is None  # not measured: unknown, never a yes
    assert fits(_row(micro_runs=None), PROFILES["phone"])[0] is True


@pytest.mark.skipif(micro_unavailable() is not None, reason="tflite-micro has no wheel for this machine")
def test_a_run_for_a_board_adds_its_rows_writes_firmware_and_recommends_only_what_fits(tmp_path):
    out = tmp_path / "run"
    frame = compress.compare("synthetic", ["quantize-int8", "quantize-dynamic"], epochs=1, out=out,
                             device="nrf52840")
    rows = {row["strategy"]: row for row in frame.to_dict("records")}
    assert rows["quantize-int8-io"]["io_type"] == "int8"  # added by the device, by what it provides
    assert rows["quantize-int8"]["io_type"] == "float32"
    header = (out / "quantize-int8-io.h").read_text()
    assert f"quantize_int8_io_arena_bytes = {int(rows['quantize-int8-io']['micro_arena_bytes'])};" in header
    assert "alignas(16) const std::uint8_t quantize_int8_io_model[]" in header
    assert not (out / "quantize-int8.h").exists()  # float input and output: not for this board
    choice = recommend(out, device="nrf52840", max_accuracy_drop=100)
    assert choice.best.row["strategy"] == "quantize-int8-io"
    assert recommend(out, max_accuracy_drop=100).best.row["strategy"] != "quantize-int8-io"
    with pytest.raises(NothingQualifies, match=r"no configuration fits .* closest is .* over the"):
        recommend(out, device="mcu:ram=1k,flash=1m", max_accuracy_drop=100)
    report = (out / "report.md").read_text()
    assert "## On the device: nrf52840" in report and "not int8" in report


def test_a_device_gives_every_pipeline_the_form_it_takes():
    from compress.orchestrate.plan import device_form
    from compress.strategies import strategies_from_spec

    board = PROFILES["nrf52840"]
    (pruned,) = strategies_from_spec("prune-magnitude")
    assert device_form(pruned, board) == f"{pruned.spec()}>quantize-int8-io"  # by what it provides
    assert device_form(pruned, PROFILES["phone"]) == pruned.spec()
    assert device_form(pruned, parse_device("mcu:ram=1m,flash=1m,int8=no")) == pruned.spec()
    (int8_io,) = strategies_from_spec("prune-magnitude>quantize-int8-io")
    assert device_form(int8_io, board) == int8_io.spec()
    (float_io,) = strategies_from_spec("quantize-int8")
    with pytest.raises(UserError, match="quantize-int8 writes a model without int8 inputs and outputs, "
                       "which nrf52840 requires"):
        device_form(float_io, board)


def test_tune_for_a_board_chooses_only_what_fits_and_counts_its_flash():
    from compress.orchestrate.tune_space import TuneSettings
    from compress.orchestrate.tune_trials import Trial, choose

    def trial(spec: str, gzip: int, raw: int, fitting: bool | None) -> Trial:
        return Trial(0, spec, spec, 1, "ok", val_accuracy=0.9, drop_pp=0.0, size_bytes=raw,
                     size_gzip_bytes=gzip, speedup=1.0, fits=fitting)

    # sparse weights gzip well but take the same flash: a board is chosen for by raw bytes
    sparse, dense, too_big = trial("sparse", 100, 900, True), trial("dense", 400, 500, True), \
        trial("big", 50, 50, False)
    board = TuneSettings(max_accuracy_drop=1.0, device="nrf52840")
    assert choose([sparse, dense, too_big], board).spec == "dense"
    assert choose([sparse, dense, too_big], TuneSettings(max_accuracy_drop=1.0)).spec == "big"
    assert choose([trial("unmeasured", 10, 10, None)], board) is None  # unknown is not a yes
    with pytest.raises(UserError, match="is not a device"):
        TuneSettings(max_accuracy_drop=1.0, device="toaster").validate()


@pytest.mark.slow
@pytest.mark.skipif(micro_unavailable() is not None, reason="tflite-micro has no wheel for this machine")
def test_tune_for_a_board_measures_trials_in_tflite_micro_and_ends_in_its_form(tmp_path):
    import json

    from compress.orchestrate.executors import SerialExecutor
    from compress.orchestrate.tune import NothingMeetsBudget, tune
    from compress.orchestrate.tune_space import TuneSettings, stage_names
    from compress.results.rows import TUNE_FILE

    settings = TuneSettings(max_accuracy_drop=2.0, max_trials=6, device="nrf52840",
                            strategies=("quantize-int8", "prune-magnitude"))
    result = tune(settings, SerialExecutor(), out=tmp_path / "t", seeds=1, dataset="synthetic", epochs=1)
    record = json.loads((tmp_path / "t" / TUNE_FILE).read_text())
    assert record["device"] == "nrf52840" and stage_names(record["chosen_spec"])[-1] == "quantize-int8-io"
    trained = [t for t in record["trials"] if t["status"] == "ok"]
    assert trained and all(t["fits"] is True and "arena" in t["fit"] for t in trained)
    refused = [t for t in record["trials"] if t["spec"] == "quantize-int8"]
    assert refused and refused[0]["status"] == "invalid" and "int8 inputs and outputs" in refused[0]["reason"]
    assert any(r["spec"] == record["chosen_spec"] and r["micro_arena_bytes"] for r in result.rows)
    assert "Fits the device" in (tmp_path / "t" / "report.md").read_text()
    tiny = TuneSettings(max_accuracy_drop=2.0, max_trials=2, device="mcu:ram=1k,flash=1m",
                        strategies=("quantize-int8",))
    with pytest.raises(NothingMeetsBudget, match=r"none fits mcu \(RAM 1 KiB.*its arena needs"):
        tune(tiny, SerialExecutor(), out=tmp_path / "tiny", seeds=1, dataset="synthetic")
