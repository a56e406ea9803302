"""Image folders (one sub-folder per class) as --data: read, split, cached, and refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import compress
from compress.cli import cli
from compress.data.images import load_image_folder


def run_cli(args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, args)


def digits_folder(root, per_class: int | None = None):
    """scikit-learn's digits as 8-bit PNGs, DIR/<digit>/<n>.png; returns the same images as
    arrays (in the folder's order, so both sources split alike)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    xs, ys = [], []
    for digit in range(10):
        rows = np.flatnonzero(bunch.target == digit)[:per_class]
        (root / str(digit)).mkdir(parents=True)
        for n, row in enumerate(rows):
            pixels = np.round(bunch.images[row] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / str(digit) / f"{n:04d}.png")
            xs.append(pixels / 255.0)
            ys.append(digit)
    return np.array(xs, dtype=np.float32)[..., None], np.array(ys)


def test_a_folder_of_png_digits_matches_the_equivalent_npz(tmp_path):
    x, y = digits_folder(tmp_path / "digits")
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    options = {"strategies": ["quantize-int8"], "epochs": 3}
    folder = compress.compare(data=tmp_path / "digits", out=tmp_path / "from-folder", **options)
    arrays = compress.compare(data=tmp_path / "digits.npz", out=tmp_path / "from-npz", **options)
    assert list(folder["status"]) == ["ok", "ok"]
    assert folder["teacher_architecture"][0] == "cnn:32,64:128"  # images, not features
    assert folder["accuracy"][0] == pytest.approx(arrays["accuracy"][0], abs=0.02)
    assert "1,797 images in 10 class folders" in folder["preprocessing"][0]
    assert "8x8 grayscale" in folder["preprocessing"][0]


def test_sizes_modes_stray_files_and_a_given_test_split(tmp_path):
    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 5)):
        for name in ("circle", "square"):
            (root / split / name).mkdir(parents=True)
            for n in range(count):
                size = (16, 16) if n else (20, 24)  # one odd size per class folder
                pixels = rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(pixels, mode="RGB").save(root / split / name / f"{n}.jpg")
            (root / split / name / "notes.txt").write_text("not an image")
    dataset, record = load_image_folder(root, seed=0)
    assert dataset.x_test.shape == (10, 16, 16, 3) and len(dataset.y_test) == 10
    assert record.test_folder == "test" and record.channels == 3 and record.size == (16, 16)
    assert record.resized == 4 and len(record.ignored) == 4
    assert "4 resized to 16x16" in record.summary()
    assert "4 files outside the class folders or not images, ignored" in record.summary()
    assert dataset.training.x_train.min() >= 0.0 and dataset.training.x_train.max() <= 1.0
    again, cached = load_image_folder(root, seed=0, image_size=None)
    assert cached.from_cache and np.array_equal(again.x_test, dataset.x_test)
    sized, _ = load_image_folder(root, seed=0, image_size=(8, 12))
    assert sized.x_test.shape == (10, 8, 12, 3)


def _one_class(root):
    (root / "cat").mkdir(parents=True)
    Image.new("L", (4, 4)).save(root / "cat" / "1.png")


def _unreadable(root):
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for n in range(6):
            Image.new("L", (4, 4), color=n * 40).save(root / name / f"{n}.png")
    (root / "dog" / "broken.png").write_bytes(b"not a png at all")


def _empty_class(root):
    _unreadable(root)
    (root / "dog" / "broken.png").unlink()
    (root / "bird").mkdir()


@pytest.mark.parametrize(("make", "message"), [
    (_one_class, "has one class folder ('cat'); an image folder needs one sub-folder per class"),
    (_unreadable, "broken.png: not a readable image (cannot identify image file); remove or replace it"),
    (_empty_class, "bird holds no images"),
    (lambda root: root.mkdir(), "has no class folders"),
])
def test_bad_image_folders_are_one_line_exit_2_and_write_nothing(tmp_path, make, message):
    make(tmp_path / "images")
    result = run_cli(["run", "--data", str(tmp_path / "images"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_image_size_is_checked_and_only_for_image_folders(tmp_path):
    digits_folder(tmp_path / "digits", per_class=6)
    result = run_cli(["run", "--data", str(tmp_path / "digits"), "--image-size", "8x8",
                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--image-size takes HEIGHT,WIDTH like 32,32" in result.stderr
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 4)), y=np.arange(30) % 2)
    result = run_cli(["run", "--data", str(tmp_path / "d.npz"), "--image-size", "8,8",
                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--image-size is for an image folder" in result.stderr


def test_a_sweep_file_resizes_an_image_folder_too(tmp_path):
    from compress.orchestrate.sweep import load_sweep, run_config

    digits_folder(tmp_path / "digits", per_class=6)
    for value in ('[12, 10]', '"12,10"'):
        sweep = tmp_path / "sweep.toml"
        sweep.write_text(f'data = "{tmp_path / "digits"}"\nimage_size = {value}\n'
                         '[[grid]]\nstrategy = "quantize-int8"\n')
        assert run_config(load_sweep(sweep)).image_size == (12, 10)
    sweep.write_text('image_size = [12, 10]\n[[grid]]\nstrategy = "quantize-int8"\n')
    with pytest.raises(compress.UserError, match="image_size is for an image folder"):
        load_sweep(sweep)
    sweep.write_text(f'data = "{tmp_path / "digits"}"\nimage_size = 12\n[[grid]]\nstrategy = "finetune"\n')
    with pytest.raises(compress.UserError, match="image_size takes HEIGHT,WIDTH like 32,32, got 12"):
        load_sweep(sweep)


def test_sixteen_bit_pngs_keep_their_range(tmp_path):
    """Pillow's convert("L") clips 16-bit pixels at 255: every image came out white."""
    rng = np.random.default_rng(0)
    for label, level in (("dark", 12_000), ("bright", 52_000)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for n in range(16):
            pixels = np.clip(rng.normal(level, 2_000, size=(8, 8)), 0, 65535).astype(np.uint16)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{n}.png")
    with Image.open(next((tmp_path / "images" / "dark").iterdir())) as image:
        assert image.mode.startswith("I")  # really stored with 16 bits
    dataset, record = load_image_folder(tmp_path / "images", seed=0)
    assert record.channels == 1
    x = np.concatenate([dataset.training.x_train, dataset.training.x_val, dataset.x_test])
    means = sorted(float(image.mean()) for image in x)
    assert 0.1 < means[0] < 0.25 and 0.7 < means[-1] < 0.9  # 12,000 and 52,000 of 65,535


def test_an_image_size_beyond_the_memory_is_one_line(tmp_path):
    digits_folder(tmp_path / "digits", per_class=6)
    result = run_cli(["run", "--data", str(tmp_path / "digits"), "--image-size", "100000,100000",
                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "GiB as float32 pixels, more than half of this machine's" in result.stderr
    assert not (tmp_path / "out").exists()


def _shapes(root, counts: dict[str, int], classes=("circle", "square")):
    """Random 8x8 RGB images: ``counts`` maps a split folder ('' for none) to images per class."""
    rng = np.random.default_rng(1)
    for split, count in counts.items():
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for n in range(count):
                pixels = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels, mode="RGB").save(root / split / name / f"{n}.png")


def test_a_validation_folder_is_the_test_split_only_when_there_is_no_test_folder(tmp_path):
    _shapes(tmp_path / "a", {"train": 16, "val": 4})
    dataset, record = load_image_folder(tmp_path / "a", seed=0)
    assert len(dataset.y_test) == 8 and record.classes == ["circle", "square"]
    assert record.test_folder == "val" and "test split as given (val/)" in record.summary()

    _shapes(tmp_path / "b", {"train": 12, "Validation": 5, "test": 3})
    dataset, record = load_image_folder(tmp_path / "b", seed=0)
    training = dataset.training
    assert len(dataset.y_test) == 6 and len(training.y_train) + len(training.y_val) == 34
    assert record.joined_training == ["Validation"]
    assert "Validation/ added to the training" in record.summary()


def test_images_in_sub_folders_of_a_class_are_that_class_and_counted(tmp_path):
    _shapes(tmp_path / "pets", {"": 16}, classes=("cat", "dog"))
    _shapes(tmp_path / "pets" / "cat", {"": 3}, classes=("augmented",))
    _, record = load_image_folder(tmp_path / "pets", seed=0)
    assert record.classes == ["cat", "dog"] and record.images == 35
    assert "3 images in sub-folders of class folders, counted in that class as Keras does " \
           "(e.g. cat/augmented/0.png)" in record.summary()


@pytest.mark.parametrize(("counts", "message"), [
    ({"test": 3, "val": 3}, "holds test/, val/ but no train/ folder"),
    ({"train": 3, "val": 3, "valid": 3}, "holds train/ and val/ and valid/; keep one of them"),
])
def test_split_folders_that_cannot_be_read_as_splits_are_refused(tmp_path, counts, message):
    _shapes(tmp_path / "images", counts)
    with pytest.raises(compress.UserError, match=message):
        load_image_folder(tmp_path / "images", seed=0)


def test_a_class_folder_beside_split_folders_is_refused_not_ignored(tmp_path):
    _shapes(tmp_path / "images", {"train": 3, "test": 3})
    _shapes(tmp_path / "images", {"": 3}, classes=("triangle",))
    with pytest.raises(compress.UserError, match=r"holds train/ beside triangle/: split folders"):
        load_image_folder(tmp_path / "images", seed=0)


def test_a_class_only_the_test_split_has_is_refused(tmp_path):
    _shapes(tmp_path / "images", {"train": 16, "test": 3})
    _shapes(tmp_path / "images" / "test", {"": 3}, classes=("triangle",))
    with pytest.raises(compress.UserError, match=r"folder\(s\) triangle are in test/ but not in train/"):
        load_image_folder(tmp_path / "images", seed=0)


def test_transparency_hidden_folders_and_broken_links_are_counted_or_skipped(tmp_path):
    root = tmp_path / "icons"
    _shapes(root, {"": 16}, classes=("on", "off"))
    see_through = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    see_through.save(root / "on" / "ghost.png")
    Image.new("RGBA", (8, 8), (255, 0, 0, 255)).save(root / "on" / "opaque.png")  # alpha, all opaque
    (root / "off" / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(root / "off" / ".thumbs" / "0.png")
    (root / "off" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    _, record = load_image_folder(root, seed=0)
    assert record.images == 34 and record.transparent == 1
    assert "1 with transparent pixels, whose alpha channel was dropped" in record.summary()
    assert record.ignored == ["off/gone.png (a broken link)"]


def test_classes_named_like_split_folders_are_told_apart_from_splits(tmp_path):
    _shapes(tmp_path / "images", {"": 16}, classes=("train", "test"))
    with pytest.raises(compress.UserError, match=r"holds train/ and test/ without class folders in them"):
        load_image_folder(tmp_path / "images", seed=0)
