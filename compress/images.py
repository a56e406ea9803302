"""Image folders as data: one sub-folder per class, the layout Keras' image_dataset_from_directory reads.

``DIR/<class>/<image>`` is split by the seed like any other source; ``DIR/train/<class>/…``
plus ``DIR/test/<class>/…`` keeps the given test split.  Images are decoded by Pillow,
converted to grayscale when every image is grayscale (else RGB), resized to one size (the
most common one unless ``image_size`` is given) and scaled to [0, 1]; every resize and
every ignored file is counted in the record.  Decoded arrays are cached by the files'
names, sizes and modification times, so a second run does not decode again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compress.data import Dataset, TrainingData, split_indices
from compress.errors import UserError
from compress.fileio import write_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: 16-bit grayscale (PNG, TIFF; "I" is how Pillow may open them): scaled by 65535, not 255.
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
#: Bump when decoding changes, so cached arrays are never stale.
DECODER_VERSION = 2  # 2: 16-bit grayscale scaled by 65535 (1 clipped it at 255)


@dataclass
class ImageFolder:
    """What was read from an image folder, recorded with every result row."""

    source: str
    images: int
    classes: list[str]
    size: tuple[int, int]
    channels: int
    resized: int = 0
    ignored: list[str] = field(default_factory=list)
    given_test: bool = False
    from_cache: bool = False

    def summary(self) -> str:
        kind = "grayscale" if self.channels == 1 else "RGB"
        parts = [f"{self.images:,} images in {len(self.classes)} class folders read from {self.source}",
                 f"{self.size[0]}x{self.size[1]} {kind}, scaled to [0, 1]"]
        if self.given_test:
            parts.append("test split as given (test/)")
        if self.resized:
            parts.append(f"{self.resized:,} resized to {self.size[0]}x{self.size[1]}")
        if self.ignored:
            count = len(self.ignored)
            parts.append(f"{count} file{'s' if count > 1 else ''} outside the class folders or not "
                         f"images, ignored (e.g. {self.ignored[0]})")
        return "; ".join(parts)


def parse_image_size(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"32,32"`` (or a pair) as (height, width); a one-line error otherwise."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        height, width = (int(part) for part in str(text).split(","))
    except ValueError:
        raise UserError(f"--image-size takes HEIGHT,WIDTH like 32,32, got {text!r}") from None
    if height < 1 or width < 1:
        raise UserError(f"--image-size must be positive, got {text!r}")
    return height, width


def load_image_folder(
    root: Path, *, seed: int, image_size: tuple[int, int] | None = None,
) -> tuple[Dataset, ImageFolder]:
    """A Dataset from ``root`` (see the module docstring), split by ``seed``."""
    given_test = (root / "train").is_dir() and (root / "test").is_dir()
    parts = [root / "train", root / "test"] if given_test else [root]
    listed = [_list_classes(part) for part in parts]
    classes = sorted(set().union(*(set(files) for files, _ in listed)))
    if len(classes) < 2:
        if not classes:
            raise UserError(f"{root} has no class folders; --data takes a .csv, .tsv, .parquet or .npz "
                            "file, or an image folder with one sub-folder per class (at least two), "
                            "e.g. DIR/cat/1.png and DIR/dog/2.png")
        raise UserError(f"{root} has one class folder ({classes[0]!r}); an image folder needs one "
                        "sub-folder per class (at least two), e.g. DIR/cat/1.png and DIR/dog/2.png")
    ignored = [name for _, skipped in listed for name in skipped]
    files = [[(path, classes.index(name)) for name, paths in found.items() for path in paths]
             for found, _ in listed]
    x_all, record = _decoded(root, [f for group in files for f, _ in group], image_size)
    record.classes, record.ignored, record.given_test = classes, ignored, given_test
    labels = [np.array([label for _, label in group], dtype=np.int64) for group in files]
    names = tuple(classes)
    x, y = x_all[:len(labels[0])], labels[0]
    if given_test:
        x_test, y_test = x_all[len(labels[0]):], labels[1]
        train, val = split_indices(y, seed, name=root.name, with_test=False, class_names=names)
    else:
        train, val, test = split_indices(y, seed, name=root.name, class_names=names)
        x_test, y_test = x[test], y[test]
    training = TrainingData(root.name, x[train], y[train], x[val], y[val], names)
    return Dataset(training, x_test, y_test), record


def _list_classes(folder: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Image files per class sub-folder, and the names of the other files found."""
    found: dict[str, list[Path]] = {}
    ignored: list[str] = []
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir():
            ignored.append(sub.name)
            continue
        images = []
        for path in sorted(sub.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(path)
                else:
                    ignored.append(str(path.relative_to(folder)))
        if not images:
            raise UserError(f"class folder {sub} holds no images ({', '.join(IMAGE_SUFFIXES)}); add "
                            "images or remove the folder")
        found[sub.name] = images
    return found, ignored


def _decoded(root: Path, paths: list[Path], image_size: tuple[int, int] | None,
             ) -> tuple[np.ndarray, ImageFolder]:
    """Every image as one float32 array, from the cache when the files are unchanged."""
    from compress.teacher import cache_dir

    stamp = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    key = hashlib.sha256(json.dumps([DECODER_VERSION, str(root.resolve()), image_size, stamp])
                         .encode()).hexdigest()[:24]
    cached = cache_dir() / "images" / f"{key}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as saved:
            record = ImageFolder(**json.loads(str(saved["record"])))
            record.size, record.from_cache = tuple(record.size), True
            return saved["x"], record
    x, record = _decode(root, paths, image_size)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, record=np.array(json.dumps({
        "source": record.source, "images": record.images, "classes": [], "size": record.size,
        "channels": record.channels, "resized": record.resized})))
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cached, buffer.getvalue())
    return x, record


def _decode(root: Path, paths: list[Path], image_size: tuple[int, int] | None,
            ) -> tuple[np.ndarray, ImageFolder]:
    from PIL import Image, UnidentifiedImageError

    headers = []
    for path in paths:  # headers first: sizes and modes decide the common shape
        try:
            with Image.open(path) as image:
                headers.append(((image.height, image.width), image.mode))
        except (UnidentifiedImageError, OSError) as error:
            raise UserError(f"{path}: not a readable image ({_reason(error)}); remove or replace "
                            "it") from None
    size = image_size or Counter(hw for hw, _ in headers).most_common(1)[0][0]
    gray = all(mode in GRAY_MODES for _, mode in headers)
    shape = (len(paths), size[0], size[1], 1 if gray else 3)
    needed = float(np.prod(shape, dtype=np.float64)) * 4
    memory = _physical_memory()
    if memory is not None and needed > memory / 2:
        raise UserError(f"{root.name}: {len(paths):,} images of {size[0]}x{size[1]} take "
                        f"{needed / 2**30:,.1f} GiB as float32 pixels, more than half of this "
                        f"machine's {memory / 2**30:.0f} GiB; choose a smaller --image-size")
    x = np.empty(shape, dtype=np.float32)
    resized = 0
    for row, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                if image.mode in SIXTEEN_BIT_MODES:  # Pillow's convert("L") clips them at 255
                    image = Image.fromarray(np.asarray(image, dtype=np.float32) / 65535.0, mode="F")
                    scale = 1.0
                else:
                    image = image.convert("L" if gray else "RGB")
                    scale = 255.0
                if (image.height, image.width) != tuple(size):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                    resized += 1
                pixels = np.asarray(image, dtype=np.float32) / scale
                if not gray and pixels.ndim == 2:  # a 16-bit grayscale image among colour ones
                    pixels = np.repeat(pixels[..., None], 3, axis=-1)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise UserError(f"{path}: not a readable image ({_reason(error)}); remove or replace "
                            "it") from None
        x[row] = pixels.reshape(x.shape[1:])
    record = ImageFolder(source=f"{root.name}/", images=len(paths), classes=[],
                         size=(int(size[0]), int(size[1])), channels=x.shape[-1], resized=resized)
    return x, record


def _physical_memory() -> float | None:
    """Bytes of RAM, where the system says (None elsewhere)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(" '")[0]  # Pillow appends the path, which the message already names
