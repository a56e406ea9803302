"""Acceptance numbers from the issues, on digits with the CNN teacher and seed 0.

These train real models for a minute or more, so they are marked slow:
`make test-slow` runs them.  They check accuracy and size, never wall-clock speed.
"""

from __future__ import annotations

import pytest

from compress.api import compare

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_quantization(tmp_path_factory):
    frame = compare("digits", ["quantize-*"], seed=0, out=tmp_path_factory.mktemp("q") / "run")
    return {row.strategy: row for row in frame.itertuples()}


def test_five_quantization_rows_plus_baseline(digits_quantization):
    assert set(digits_quantization) == {"baseline", "quantize-dynamic", "quantize-float16",
                                        "quantize-int8", "quantize-int8-io", "quantize-qat"}
    assert all(row.status == "ok" for row in digits_quantization.values())


def test_int8_is_small_and_keeps_accuracy(digits_quantization):
    base, int8 = digits_quantization["baseline"], digits_quantization["quantize-int8"]
    assert int8.size_bytes <= 0.30 * base.size_bytes
    assert int8.accuracy >= base.accuracy - 0.01
    assert int8.speedup_ci_low <= int8.speedup <= int8.speedup_ci_high


def test_qat_is_at_least_as_accurate_as_post_training_int8(digits_quantization):
    qat, int8 = digits_quantization["quantize-qat"], digits_quantization["quantize-int8"]
    assert qat.accuracy >= int8.accuracy - 0.005
