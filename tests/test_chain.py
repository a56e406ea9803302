from __future__ import annotations

import re
import time

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.common.errors import UserError
from compress.measure.size import size_stats
from compress.strategies import strategies_from_spec
from compress.strategies.apply import apply_strategy


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("quantize-int8>prune-magnitude", "quantize-int8 produces a TFLite file"),
        ("prune-magnitude>>quantize-int8", "empty stage"),
        ("prune-magnitude>", "empty stage"),
        (">quantize-int8", "empty stage"),
        ("prune-magnitude>nope", "unknown chain stage 'nope'"),
        ("quantize-*>finetune", "unknown chain stage 'quantize-*'"),
        ("prune-magnitude:sparsity=2>quantize-int8", "sparsity must be between 0 and 1"),
    ],
)
def test_invalid_chains_are_one_line_errors(spec, message):
    with pytest.raises(UserError, match=re.escape(message)):
        strategies_from_spec(spec)
    result = CliRunner().invoke(cli, ["run", "--strategy", spec])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_a_chain_is_one_row_whose_params_list_every_stage():
    (chain,) = strategies_from_spec("prune-magnitude:sparsity=0.5>quantize-int8")
    assert chain.name == "prune-magnitude>quantize-int8" and chain.family == "pipeline"
    assert chain.get_params() == {"stages": ["prune-magnitude:sparsity=0.5,epochs=10,lr=0.001",
                                             "quantize-int8:samples=200"]}
    assert chain.spec() == "prune-magnitude:sparsity=0.5,epochs=10,lr=0.001>quantize-int8:samples=200"


def test_the_deep_compression_alias_spells_out_its_stages():
    (chain,) = strategies_from_spec("deep-compression")
    assert chain.name == "prune-magnitude>cluster>quantize-int8"


def test_pruning_survives_int8_and_shrinks_gzip_beyond_either_stage(tiny, tmp_path):
    data, teacher, architecture = tiny
    specs = ("prune-magnitude:epochs=2", "quantize-int8", "prune-magnitude:epochs=2>quantize-int8")
    built = {spec: apply_strategy(strategies_from_spec(spec)[0], teacher, architecture, data, seed=0,
                                  workdir=tmp_path).flatbuffer for spec in specs}
    sizes = {spec: size_stats(fb) for spec, fb in built.items()}
    chained = sizes["prune-magnitude:epochs=2>quantize-int8"]
    assert chained.size_gzip_bytes < sizes["quantize-int8"].size_gzip_bytes
    assert chained.size_gzip_bytes < sizes["prune-magnitude:epochs=2"].size_gzip_bytes
    assert chained.pruned_sparsity >= 0.79  # the zeros are still there in the int8 weights
    assert chained.arithmetic == "int8"


def test_a_cached_leading_stage_gives_the_model_training_it_gives(tiny, tmp_path, monkeypatch):
    """Three runs of one chain: no cache, cache empty (stage trained and kept), cache full
    (stage loaded, never trained): one flatbuffer."""
    from compress.models.stage_cache import StageCache
    from compress.strategies.pruning import PruneMagnitude

    data, teacher, architecture = tiny
    spec = "prune-magnitude:epochs=1>cluster:epochs=1>quantize-int8:samples=20"
    cache = StageCache(tmp_path / "stages", key="k")

    def made(stage_cache: StageCache | None) -> bytes:
        (chain,) = strategies_from_spec(spec)
        return apply_strategy(chain, teacher, architecture, data, seed=0, workdir=tmp_path,
                              stage_cache=stage_cache).flatbuffer

    plain, first = made(None), made(cache)
    assert len(list((tmp_path / "stages").iterdir())) == 2  # prune, prune>cluster
    monkeypatch.setattr(PruneMagnitude, "compress", lambda self, ctx: pytest.fail("trained again"))
    assert made(cache) == first == plain


def test_every_stage_gets_the_chains_limits_and_the_first_cut_is_the_rows(tiny, tmp_path):
    """One share of the clock for the whole row: the first stage stops after a batch, says so
    for the row, and the stage after it sees the cut (and stops too)."""
    data, teacher, architecture = tiny
    (chain,) = strategies_from_spec("finetune:epochs=7>prune-magnitude:epochs=9")
    made = apply_strategy(chain, teacher, architecture, data, seed=0, workdir=tmp_path,
                          deadline=time.time() - 1)
    assert made.cut_short.startswith("1 of ") and made.cut_short.endswith("optimizer steps (7 epochs)")
    assert "the time budget stopped the ramp" in made.notes
