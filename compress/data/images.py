"""Image folders as data: one sub-folder per class, the layout Keras' image_dataset_from_directory reads.

``DIR/<class>/<image>`` is split by the seed like any other source.  Split folders, each
with class folders, keep the given test split: ``DIR/train`` plus ``DIR/test``, or, with no
``test/``, a validation folder (``val/``, ``valid/``, ``validation/``) as the test split; a
validation folder beside ``test/`` joins the training images, from which compress draws its
own validation split.  Images in sub-folders of a class folder belong to that class, as in
Keras, and are counted in the record.  Images are decoded by Pillow,
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
from typing import Any

import numpy as np

from compress.common.errors import UserError, option
from compress.common.fileio import write_atomic
from compress.common.text import counted
from compress.data.builtin import Dataset, TrainingData, split_indices

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: 16-bit grayscale (PNG, TIFF; "I" is how Pillow may open them): scaled by 65535, not 255.
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
#: Folders that hold a split of the data (each with class folders), not a class.
TRAIN_FOLDER, TEST_FOLDER = "train", "test"
VALIDATION_FOLDERS = ("val", "valid", "validation")
#: Bump when decoding changes, so cached arrays are never stale.
DECODER_VERSION = 3  # 2: 16-bit grayscale scaled by 65535 (1 clipped it at 255); 3: transparency counted
#: Modes that can carry transparency (a palette image may, through its "transparency" entry).
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass
class ImageFolder:
    """What was read from an image folder, recorded with every result row."""

    source: str
    images: int
    classes: list[str]
    size: tuple[int, int]
    channels: int
    resized: int = 0
    transparent: int = 0  # images with a see-through pixel, whose alpha channel was dropped
    ignored: list[str] = field(default_factory=list)
    test_folder: str | None = None  # the split folder used as the test split, if one was given
    joined_training: list[str] = field(default_factory=list)  # validation folders added to train
    nested: list[str] = field(default_factory=list)  # images below a class folder's top level
    from_cache: bool = False

    def summary(self) -> str:
        kind = "grayscale" if self.channels == 1 else "RGB"
        parts = [f"{self.images:,} images in {len(self.classes)} class folders read from {self.source}",
                 f"{self.size[0]}x{self.size[1]} {kind}, scaled to [0, 1]"]
        if self.test_folder:
            parts.append(f"test split as given ({self.test_folder}/)")
        if self.joined_training:
            folders = ", ".join(f"{name}/" for name in self.joined_training)
            parts.append(f"{folders} added to the training images (compress draws its own "
                         "validation split from them)")
        if self.nested:
            parts.append(f"{counted(len(self.nested), 'image')} in sub-folders of class folders, "
                         f"counted in that class as Keras does (e.g. {self.nested[0]})")
        if self.resized:
            parts.append(f"{self.resized:,} resized to {self.size[0]}x{self.size[1]}")
        if self.transparent:
            parts.append(f"{self.transparent:,} with transparent pixels, whose alpha channel was dropped "
                         "as Keras drops it (a see-through pixel keeps its colour)")
        if self.ignored:
            parts.append(f"{counted(len(self.ignored), 'file')} outside the class folders or not "
                         f"images, ignored (e.g. {self.ignored[0]})")
        return "; ".join(parts)


def parse_image_size(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"32,32"`` (or a pair) as (height, width); a one-line error otherwise."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        height, width = (int(part) for part in str(text).split(","))
    except ValueError:
        raise UserError(f"{option('image_size')} takes HEIGHT,WIDTH like 32,32, got {text!r}") from None
    if height < 1 or width < 1:
        raise UserError(f"{option('image_size')} must be positive, got {text!r}")
    return height, width


def load_image_folder(
    root: Path, *, seed: int, image_size: tuple[int, int] | None = None,
) -> tuple[Dataset, ImageFolder]:
    """A Dataset from ``root`` (see the module docstring), split by ``seed``."""
    training_parts, test_part = _split_folders(root)
    parts = [*training_parts, *([test_part] if test_part else [])]
    listed = [_list_classes(part) for part in parts]
    classes = sorted(set().union(*(set(files) for files, _, _ in listed)))
    if len(classes) < 2:
        if not classes and test_part:
            raise UserError(f"{root} holds {TRAIN_FOLDER}/ and {test_part.name}/ without class folders "
                            f"in them; split folders hold one sub-folder per class "
                            f"({TRAIN_FOLDER}/cat/1.png), and classes named {TRAIN_FOLDER} and "
                            f"{test_part.name} need other names")
        if not classes:
            raise UserError(f"{root} has no class folders; {option('data')} takes a .csv, .tsv, .parquet or "
                            ".npz file, or an image folder with one sub-folder per class (at least two), "
                            "e.g. DIR/cat/1.png and DIR/dog/2.png")
        raise UserError(f"{root} has one class folder ({classes[0]!r}); an image folder needs one "
                        "sub-folder per class (at least two), e.g. DIR/cat/1.png and DIR/dog/2.png")
    if test_part:
        unseen = sorted(set(listed[-1][0]) - {name for found, _, _ in listed[:-1] for name in found})
        if unseen:
            raise UserError(f"{root}: class folder(s) {', '.join(unseen)} are in {test_part.name}/ but not "
                            f"in {TRAIN_FOLDER}/; no model learns a class it never sees, so add "
                            f"training images of it or remove it from {test_part.name}/")
    ignored = [name for _, skipped, _ in listed for name in skipped]
    files = [[(path, classes.index(name)) for name, paths in found.items() for path in paths]
             for found, _, _ in listed]
    x_all, record = _decoded(root, [f for group in files for f, _ in group], image_size)
    record.classes, record.ignored = classes, ignored
    record.nested = [name for _, _, nested in listed for name in nested]
    record.test_folder = test_part.name if test_part else None
    record.joined_training = [part.name for part in training_parts[1:]]
    training_files = sum(len(group) for group in files[:len(training_parts)])
    names = tuple(classes)
    labels = np.array([label for group in files for _, label in group], dtype=np.int64)
    x, y = x_all[:training_files], labels[:training_files]
    if test_part:
        x_test, y_test = x_all[training_files:], labels[training_files:]
        train, val = split_indices(y, seed, name=root.name, with_test=False, class_names=names)
    else:
        train, val, test = split_indices(y, seed, name=root.name, class_names=names)
        x_test, y_test = x[test], y[test]
    training = TrainingData(root.name, x[train], y[train], x[val], y[val], names)
    return Dataset(training, x_test, y_test), record


def _split_folders(root: Path) -> tuple[list[Path], Path | None]:
    """The folders whose class folders are training images, and the test split's folder (None:
    ``root`` itself holds the class folders, and the seed splits them)."""
    folders = {sub.name.lower(): sub for sub in root.iterdir()
               if sub.is_dir() and not sub.name.startswith(".")}
    validation = [folders[name] for name in VALIDATION_FOLDERS if name in folders]
    if TRAIN_FOLDER not in folders:
        held_out = [name for name in (TEST_FOLDER, *VALIDATION_FOLDERS) if name in folders]
        if held_out and len(held_out) == len(folders):
            raise UserError(f"{root} holds {', '.join(f'{n}/' for n in held_out)} but no train/ folder; "
                            "put the training images in train/<class>/, or point at one folder of "
                            "class folders")
        return [root], None
    others = sorted(name for name in folders if name not in (TRAIN_FOLDER, TEST_FOLDER, *VALIDATION_FOLDERS))
    if others:
        raise UserError(f"{root} holds train/ beside {', '.join(f'{n}/' for n in others)}: split folders "
                        "(train/, test/, val/, each with class folders) and class folders cannot be "
                        "mixed; move those into the splits, or rename a class that is named train")
    if TEST_FOLDER in folders:
        return [folders[TRAIN_FOLDER], *validation], folders[TEST_FOLDER]
    if len(validation) > 1:
        raise UserError(f"{root} holds train/ and {' and '.join(f'{v.name}/' for v in validation)}; "
                        "keep one of them as the held-out split, or name it test/")
    return [folders[TRAIN_FOLDER]], validation[0] if validation else None


def _list_classes(folder: Path) -> tuple[dict[str, list[Path]], list[str], list[str]]:
    """Image files per class sub-folder, the names of the other files found, and the images
    below a class folder's top level (Keras reads them as that class)."""
    found: dict[str, list[Path]] = {}
    ignored: list[str] = []
    nested: list[str] = []
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir():
            ignored.append(sub.name)
            continue
        images = []
        for path in sorted(sub.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(sub).parts):
                continue  # hidden, as .thumbs/ or .DS_Store: not the user's data
            if path.is_symlink() and not path.exists():
                ignored.append(f"{path.relative_to(folder)} (a broken link)")
            elif path.is_file():
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(path)
                    if path.parent != sub:
                        nested.append(str(path.relative_to(folder)))
                else:
                    ignored.append(str(path.relative_to(folder)))
        if not images:
            raise UserError(f"class folder {sub} holds no images ({', '.join(IMAGE_SUFFIXES)}); add "
                            "images or remove the folder")
        found[sub.name] = images
    return found, ignored, nested


def _decoded(root: Path, paths: list[Path], image_size: tuple[int, int] | None,
             ) -> tuple[np.ndarray, ImageFolder]:
    """Every image as one float32 array, from the cache when the files are unchanged."""
    from compress.common.fileio import cache_dir

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
        "channels": record.channels, "resized": record.resized, "transparent": record.transparent})))
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
                        f"machine's {memory / 2**30:.0f} GiB; choose a smaller {option('image_size')}")
    x = np.empty(shape, dtype=np.float32)
    resized = transparent = 0
    for row, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                transparent += _see_through(image)
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
                         size=(int(size[0]), int(size[1])), channels=x.shape[-1], resized=resized,
                         transparent=transparent)
    return x, record


def _see_through(image: Any) -> bool:
    """Whether any pixel of a Pillow image is less than opaque."""
    if image.mode not in ALPHA_MODES and not (image.mode == "P" and "transparency" in image.info):
        return False
    return bool(np.asarray(image.convert("RGBA"))[..., 3].min() < 255)


def _physical_memory() -> float | None:
    """Bytes of RAM, where the system says (None elsewhere)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(" '")[0]  # Pillow appends the path, which the message already names
