from __future__ import annotations

import numpy as np
import pytest

from compress.common.errors import UserError
from compress.data.builtin import Dataset, TrainingData, load_dataset, split_dataset


@pytest.mark.parametrize(("name", "sizes"), [("document", (700, 100, 200)),
                                             ("synthetic", (800, 200, 1000))])
def test_the_documents_generator_splits_stratified(name, sizes):
    data = load_dataset(name, seed=0)
    t = data.training
    assert data.input_shape == (20,)
    assert data.class_names == ("0", "1", "2")
    assert (len(t.y_train), len(t.y_val), len(data.y_test)) == sizes
    for split in (t.y_train, t.y_val, data.y_test):
        shares = np.bincount(split, minlength=3) / len(split)
        assert np.allclose(shares, 1 / 3, atol=0.02)


def test_digits_are_images_scaled_to_unit_range():
    data = load_dataset("digits", seed=0)
    assert data.input_shape == (8, 8, 1)
    assert data.training.is_image
    for x in (data.training.x_train, data.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert data.n_classes == 10


def test_the_seed_fixes_the_splits():
    a, b, c = load_dataset("digits", 0), load_dataset("digits", 0), load_dataset("digits", 1)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert np.array_equal(a.x_test, b.x_test)


def test_strategies_cannot_see_the_test_split():
    data = load_dataset("synthetic", 0)
    assert isinstance(data, Dataset)
    assert not hasattr(data.training, "x_test")
    assert isinstance(data.training, TrainingData)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UserError, match="synthetic, document, digits"):
        load_dataset("mnist")


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.zeros(40, dtype=int), "only one class"),
        (np.array([0] * 37 + [1] * 3), "class 1 has only 3 samples"),
    ],
)
def test_unsplittable_labels_are_user_errors(y, message):
    with pytest.raises(UserError, match=message):
        split_dataset("x", np.zeros((len(y), 2)), y, seed=0)


def test_too_few_rows_for_the_classes_is_one_line_with_the_rows_needed():
    import numpy as np

    from compress.common.errors import UserError
    from compress.data.builtin import split_indices

    with pytest.raises(UserError, match=r"30 rows are too few for 5 classes: .* which takes 42 rows"):
        split_indices(np.repeat(np.arange(5), 6), 0, name="tiny")
    assert [len(part) for part in split_indices(np.arange(42) % 5, 0, name="enough")] == [28, 5, 9]
