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
