"""The factorization family: Dense kernels as two thin ones of low rank (truncated SVD)."""

from __future__ import annotations

import numpy as np
import pytest

from compress.models.architectures import build_model
from compress.models.backend import keras
from compress.strategies import Skip
from compress.strategies.apply import apply_strategy
from compress.strategies.factorization import SEARCH_RANKS, Factorize, factor, low_rank
from compress.testing import check_strategy


def test_the_factors_rebuild_the_kernel_at_full_rank_and_keep_the_largest_directions():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(40, 24)).astype(np.float32)
    a, b, energy = factor(kernel, 24)
    np.testing.assert_allclose(a @ b, kernel, atol=1e-4)
    assert energy == pytest.approx(1.0)
    a, b, energy = factor(kernel, 6)
    assert a.shape == (40, 6) and b.shape == (6, 24) and 0 < energy < 1
    # the best rank-6 approximation (Eckart-Young): no other rank-6 product is closer
    other = rng.normal(size=(40, 6)) @ np.linalg.lstsq(rng.normal(size=(40, 6)), kernel, rcond=None)[0]
    assert np.linalg.norm(a @ b - kernel) < np.linalg.norm(other - kernel)


def test_factorization_reduces_parameters_at_the_asked_rank_and_leaves_the_output_whole():
    """mlp:128,64 on 20 features: at rank 0.25 the 20×128 kernel becomes 20×5 and 5×128, the
    128×64 one 128×16 and 16×64; the logits layer stays as it is."""
    teacher = build_model("mlp:128,64", (20,), 3, seed=0)
    model, names, left, _ = low_rank(teacher, 0.25)
    assert len(names) == 2 and left == [f"{teacher.layers[-1].name} (the output)"]
    saved = (20 * 128 - 5 * (20 + 128)) + (128 * 64 - 16 * (128 + 64))
    assert model.count_params() == teacher.count_params() - saved
    # kernels of rank 5 and 16 already: the factorized model computes the same function
    rng = np.random.default_rng(1)
    for layer, (m, r, n) in zip(teacher.layers[:2], ((20, 5, 128), (128, 16, 64)), strict=True):
        kernel = (rng.normal(size=(m, r)) @ rng.normal(size=(r, n)) / 10).astype(np.float32)
        layer.set_weights([kernel, layer.get_weights()[1]])
    same, _, _, energy = low_rank(teacher, 0.25)
    x = rng.normal(size=(64, 20)).astype(np.float32)
    np.testing.assert_allclose(same.predict(x, verbose=0), teacher.predict(x, verbose=0),
                               rtol=1e-3, atol=1e-3)
    assert energy == pytest.approx(1.0)


def test_factorize_passes_the_conformance_kit_on_a_table_and_an_image_teacher(tiny, tiny_digits):
    for problem in (tiny, tiny_digits):
        check_strategy(Factorize(epochs=1), *problem)


def test_a_model_without_a_dense_kernel_to_factor_is_a_one_line_skip(tmp_path):
    from compress.data.builtin import TrainingData

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    data = TrainingData("t", rng.normal(size=(30, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, 30),
                        rng.normal(size=(10, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, 10),
                        ("a", "b", "c"))
    with pytest.raises(Skip, match=r"^no Dense kernel or Embedding table to factorize at rank 0.25: "
                                   r".*only Dense kernels and Embedding tables are factorized.*"
                                   r"\(the output\)$"):
        apply_strategy(Factorize(epochs=1), model, "test", data, seed=0, workdir=tmp_path)


def test_max_drop_keeps_the_smallest_rank_certified_on_the_evidence(tiny, tmp_path, monkeypatch):
    """A stand-in whose loss grows as the rank shrinks (0.4 pp per step of the search): with
    1 pp the third rank is kept, the fourth fails and the rest are never trained."""
    import dataclasses

    import compress.strategies.budget as budget
    import compress.strategies.factorization as factorization

    data, teacher, architecture = tiny
    ranks = {low_rank(teacher, share)[0].count_params(): step for step, share in enumerate(SEARCH_RANKS)}
    trained = []
    monkeypatch.setattr(factorization, "train_student",
                        lambda model, ctx, **kw: trained.append(1) or "1 epoch")

    def correct(model, x, y):
        rows = np.arange(100_000) < 90_000
        rows[: 400 * ranks.get(model.count_params(), 0)] = False  # 0.4 pp per step; the teacher none
        return rows

    monkeypatch.setattr(budget, "correct", correct)
    evidence = dataclasses.replace(data, x_evidence=data.x_val, y_evidence=data.y_val)
    artifact = apply_strategy(Factorize(max_drop=1), teacher, architecture, evidence, seed=0,
                              workdir=tmp_path)
    notes = artifact.notes
    assert notes.startswith(f"max_drop=1: kept rank {SEARCH_RANKS[2]:g}.")
    assert f"rank {SEARCH_RANKS[3]:g} -1.2±" in notes and "certified by fixed-sequence" in notes
    assert len(trained) == 4


def test_bad_parameters_are_one_line_errors():
    from compress.common.errors import UserError

    for bad, message in (({"rank": 0}, "rank must be a share"), ({"rank": 1.5}, "rank must be a share"),
                         ({"max_drop": -1}, "max_drop must be 0 or more"), ({"epochs": 0}, "epochs must be")):
        with pytest.raises(UserError, match=message):
            Factorize(**bad)
