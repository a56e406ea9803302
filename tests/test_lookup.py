"""TFLite Micro's look-up-table compression (``lut``): fewer bytes of flash, files that run only
in TFLite Micro, and measurement that scores them there."""

from __future__ import annotations

import numpy as np
import pytest

from compress.models.backend import to_tflite
from compress.models.flatbuffer import micro_only
from compress.strategies import strategies_from_spec
from compress.strategies.apply import apply_strategy
from compress.strategies.lookup import palettized
from compress.testing import check_strategy


def test_a_palette_has_the_asked_values_and_is_the_same_each_time():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(64, 32)).astype(np.float32)
    palette = palettized(kernel, 16)
    assert len(np.unique(palette)) == 16 and palette.dtype == np.float32 and palette.shape == kernel.shape
    assert np.array_equal(palette, palettized(kernel, 16))
    # each weight went to its nearest centre: no closer centre exists for any of them
    centres = np.unique(palette)
    nearest = centres[np.abs(kernel[..., None] - centres).argmin(axis=-1)]
    np.testing.assert_allclose(np.abs(kernel - palette), np.abs(kernel - nearest), atol=1e-6)
    assert np.abs(kernel - palette).mean() < np.abs(kernel - palettized(kernel, 4)).mean()


def test_lut_conforms_and_its_file_runs_only_in_tflite_micro(tiny_digits, tmp_path):
    data, teacher, architecture = tiny_digits
    (lut,) = strategies_from_spec("lut")
    check_strategy(lut, data, teacher, architecture)
    made = apply_strategy(lut, teacher, architecture, data, seed=0, workdir=tmp_path)
    assert micro_only(made.flatbuffer) and not micro_only(to_tflite(teacher))
    assert len(made.flatbuffer) < len(to_tflite(teacher)) / 5
    assert "palettized here to 16 values each" in made.notes


def test_after_cluster_the_kernels_are_packed_as_they_are(tiny_digits, tmp_path):
    data, teacher, architecture = tiny_digits
    (chain,) = strategies_from_spec("cluster:clusters=8,epochs=1>lut")
    notes = apply_strategy(chain, teacher, architecture, data, seed=0, workdir=tmp_path).notes
    assert "kernels with at most 16 values already" in notes and "palettized here" not in notes
    assert "(8 values)" in notes


def test_a_run_scores_a_lut_row_in_tflite_micro_smaller_than_int8_and_does_not_time_it(tmp_path):
    """The acceptance of issue 43 in small: a clustered model packed for TFLite Micro takes less
    flash than int8 of the same teacher and loses at most 1 pp on the test split, scored in
    TFLite Micro; it has no LiteRT latency, and bench refuses it in one line."""
    import compress
    from compress.common.errors import UserError
    from compress.orchestrate.bench import bench
    from compress.results.rows import read_results

    compress.compare("digits", ["quantize-int8", "cluster:epochs=2>lut"], seed=0, epochs=3,
                     out=tmp_path / "run", jobs=1)
    rows = {row["strategy"]: row for row in read_results(tmp_path / "run")}
    int8, packed, teacher = rows["quantize-int8"], rows["cluster>lut"], rows["baseline"]
    assert packed["status"] == "ok" and packed["micro_runs"]
    assert packed["micro_flash_bytes"] < int8["micro_flash_bytes"]
    assert packed["accuracy"] == packed["micro_accuracy"] >= teacher["accuracy"] - 0.01
    assert packed["latency_us_p50"] is None and packed["micro_agreement"] is None
    with pytest.raises(UserError, match="runs only in TFLite Micro"):
        bench([tmp_path / "run" / packed["artifact"]], data="digits")


def test_bits_out_of_range_are_one_line_errors():
    from compress.common.errors import UserError

    for bad in (0, 9):
        with pytest.raises(UserError, match="bits must be a whole number from 1 to 8"):
            strategies_from_spec(f"lut:bits={bad}")
    with pytest.raises(UserError, match=r"lut: bits must be int, got 2\.5"):
        strategies_from_spec("lut:bits=2.5")
