"""Datasets decoded once into memory as uint8 arrays at the model's input size.

Supported layouts:

* ``cifar10``: the CIFAR-10 JPEG copy (``CIFAR-10-images/{train,test}/<class>/*.jpg``) or the original
  python batches (``cifar-10-batches-py/data_batch_1..5, test_batch``); training images come first.
* ``flickr25k``: MIRFLICKR-25000 (``im1.jpg .. im25000.jpg`` plus ``annotations/<concept>.txt`` listing
  1-based image numbers; the ``*_r1.txt`` strict files are ignored), 24 concepts as multi-hot labels.
* ``folder``: any folder of images: ``ROOT/<class>/...``, ``ROOT/{train,test}/<class>/...`` (test images are
  the queries) or unlabelled (trained on and indexed, never scored).

Unreadable or corrupt files are logged, listed in ``ImageSet.skipped`` and left out; they never stop a load.
"""

from __future__ import annotations

import io
import logging
import pickle
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from nac_hash.images import InvalidImageError, is_image_file, list_images, read_image, square_image

logger = logging.getLogger(__name__)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FLICKR25K_CONCEPTS = (
    "animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake", "male",
    "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset", "transport",
    "tree", "water",
)


class DatasetError(ValueError):
    """A dataset root is missing or does not have the expected layout."""


@dataclass
class ImageSet:
    """Decoded images with labels.

    Attributes:
        images: (N, S, S, 3) uint8 RGB.
        labels: (N,) int64 class ids (-1 when unlabelled) or (N, C) uint8 multi-hot.
        class_names: names of the label ids / multi-hot columns.
        paths: per image, its file path relative to the dataset root (or a batch reference).
        is_test: (N,) bool, True for the dataset's official test images.
        skipped: (path, reason) for every file that could not be read.
        description: how results on this data should be labelled.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    paths: list[str]
    is_test: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    description: str = ""


def _decode(path: Path, size: int) -> np.ndarray | str:
    """Decoded square image, or the reason it could not be read."""
    try:
        return read_image(path, size)
    except (InvalidImageError, OSError) as e:
        return str(e)


def decode_files(root: Path, files: Sequence[Path], size: int,
                 workers: int = 8) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode files in parallel (PIL releases the GIL while decoding).

    Returns:
        The (M, size, size, 3) images that decoded, the indices into ``files`` they came from, and the
        skipped (relative path, reason) pairs.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _decode(p, size), files))
    kept, skipped = [], []
    for i, result in enumerate(results):
        if isinstance(result, str):
            relative = str(files[i].relative_to(root))
            logger.warning("skipping %s: %s", relative, result)
            skipped.append((relative, result))
        else:
            kept.append(i)
    images = np.stack([results[i] for i in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    return images, kept, skipped


def _number_key(path: Path) -> tuple[str, int, str]:
    match = re.search(r"(\d+)$", path.stem)
    return (str(path.parent), int(match.group(1)) if match else -1, path.name)


SPLIT_FOLDERS = ("train", "test")


def folder_layout(root: Path, files: Sequence[Path]) -> str:
    """``split`` (ROOT/{train,test}/<class>/...), ``classes`` (ROOT/<class>/...) or ``unlabelled``."""
    parts = [p.relative_to(root).parts for p in files]
    if parts and all(len(q) > 2 and q[0].lower() in SPLIT_FOLDERS for q in parts) and \
            {q[0].lower() for q in parts} == set(SPLIT_FOLDERS):
        return "split"
    if parts and all(len(q) > 1 for q in parts):
        return "classes"
    return "unlabelled"


def _class_of(parts: tuple[str, ...], layout: str) -> str:
    return parts[1] if layout == "split" else parts[0]


def load_image_folder(root: str | Path, image_size: int) -> ImageSet:
    """Any folder of images, laid out as :func:`folder_layout` detects; unlabelled images get label -1.

    The layout and the classes with their image counts are logged before any image is decoded.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist (--data-root)")
    files = list_images(root)
    if not files:
        raise DatasetError(f"no image files under {root} (--data-root)")
    layout = folder_layout(root, files)
    parts = [p.relative_to(root).parts for p in files]
    classes = sorted({_class_of(q, layout) for q in parts}) if layout != "unlabelled" else []
    logger.info("%s: %s", root, describe_folder(layout, [_class_of(q, layout) for q in parts] if classes else []))
    images, kept, skipped = decode_files(root, files, image_size)
    class_id = {name: i for i, name in enumerate(classes)}
    labels = np.array([class_id[_class_of(parts[i], layout)] if classes else -1 for i in kept], dtype=np.int64)
    is_test = np.array([layout == "split" and parts[i][0].lower() == "test" for i in kept], dtype=bool)
    return ImageSet(images, labels, classes, [str(files[i].relative_to(root)) for i in kept], is_test, skipped,
                    description=f"folder {root.name} ({layout} layout)")


def describe_folder(layout: str, class_of_file: Sequence[str]) -> str:
    """One line: the layout and, for labelled folders, each class with its image count."""
    if not class_of_file:
        return f"{layout} layout, no class folders: it can be trained on and indexed, not scored"
    names, counts = np.unique(np.array(class_of_file), return_counts=True)
    listing = ", ".join(f"{name} ({count})" for name, count in zip(names, counts, strict=True))
    where = "ROOT/{train,test}/<class>/" if layout == "split" else "ROOT/<class>/"
    return f"{layout} layout ({where}), {len(names)} classes: {listing}"


def _find_dir(root: Path, marker: Callable[[Path], bool], names: Sequence[str]) -> Path | None:
    for candidate in [root, *(root / name for name in names)]:
        if marker(candidate):
            return candidate
    return None


def load_cifar10(root: str | Path, image_size: int = 32) -> ImageSet:
    """CIFAR-10 from the JPEG copy or the original python batches, whichever ``root`` holds."""
    root = Path(root)
    batches = _find_dir(root, lambda d: (d / "data_batch_1").is_file(), ["cifar-10-batches-py"])
    if batches is not None:
        return load_cifar10_batches(batches, image_size)
    folders = _find_dir(root, lambda d: (d / "train").is_dir() and (d / "test").is_dir(),
                        ["CIFAR-10-images", "CIFAR-10"])
    if folders is None:
        raise DatasetError(
            f"{root} holds neither the CIFAR-10 JPEG copy (train/ and test/ class folders) nor the python "
            "batches (data_batch_1 ...); unpack one there, or pass --data-root; "
            "`nac-hash data cifar10` finds or downloads it"
        )
    return _load_cifar10_folders(folders, image_size)


def _load_cifar10_folders(root: Path, image_size: int) -> ImageSet:
    files, labels, is_test = [], [], []
    for part in ("train", "test"):
        for label, name in enumerate(CIFAR10_CLASSES):
            class_files = sorted((p for p in (root / part / name).glob("*") if is_image_file(p)),
                                 key=_number_key)
            files += class_files
            labels += [label] * len(class_files)
            is_test += [part == "test"] * len(class_files)
    if not files:
        raise DatasetError(f"no images found under {root}/train/<class>/ and {root}/test/<class>/")
    images, kept, skipped = decode_files(root, files, image_size)
    return ImageSet(images, np.array(labels, dtype=np.int64)[kept], list(CIFAR10_CLASSES),
                    [str(files[i].relative_to(root)) for i in kept], np.array(is_test, dtype=bool)[kept],
                    skipped, description=cifar10_description(files))


def cifar10_description(files: Sequence[Path]) -> str:
    """"CIFAR-10 (JPEG copy)" where any file is a JPEG (a lossy copy); "CIFAR-10" for lossless files, such as
    the PNG files written from the original batches (training.cifar10_data)."""
    lossy = any(f.suffix.lower() in (".jpg", ".jpeg") for f in files)
    return "CIFAR-10 (JPEG copy)" if lossy else "CIFAR-10"


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batch files that refuses every class except NumPy's array rebuilders."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch file -> ((N, 32, 32, 3) uint8 images, (N,) labels)."""
    try:
        batch = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as e:
        raise DatasetError(f"{path} is not a CIFAR-10 python batch: {e}") from e
    if len(data) != len(labels):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def load_cifar10_batches(root: str | Path, image_size: int = 32) -> ImageSet:
    """The original CIFAR-10 python batches (data_batch_1..5 then test_batch)."""
    root = Path(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DatasetError(f"{root} lacks CIFAR-10 batch files: {', '.join(missing)}")
    parts = [read_cifar_batch(root / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    if image_size != 32:
        images = np.stack([square_image(Image.fromarray(im), image_size) for im in images])
    paths = [f"{n}[{i}]" for n, (data, _) in zip(names, parts, strict=True) for i in range(len(data))]
    is_test = np.concatenate([np.full(len(d), n == "test_batch") for n, (d, _) in zip(names, parts, strict=True)])
    return ImageSet(images, np.concatenate([p[1] for p in parts]), list(CIFAR10_CLASSES), paths, is_test,
                    description="CIFAR-10")


def load_flickr25k(root: str | Path, image_size: int = 224) -> ImageSet:
    """MIRFLICKR-25000 images with the 24 potential-label concepts as a multi-hot matrix."""
    root = Path(root)
    annotations = root / "annotations"
    if not annotations.is_dir():
        raise DatasetError(f"{root} is not a MIRFLICKR-25K folder: {annotations} is missing")
    files = sorted((p for p in root.glob("im*.jpg") if re.fullmatch(r"im\d+", p.stem)), key=_number_key)
    if not files:
        raise DatasetError(f"no im<N>.jpg images in {root}")
    number_to_row = {int(p.stem[2:]): i for i, p in enumerate(files)}
    labels = np.zeros((len(files), len(FLICKR25K_CONCEPTS)), dtype=np.uint8)
    for column, concept in enumerate(FLICKR25K_CONCEPTS):
        concept_file = annotations / f"{concept}.txt"
        if not concept_file.is_file():
            raise DatasetError(f"missing annotation file {concept_file}")
        for token in concept_file.read_text().split():
            row = number_to_row.get(int(token))
            if row is not None:
                labels[row, column] = 1
    images, kept, skipped = decode_files(root, files, image_size)
    return ImageSet(images, labels[kept], list(FLICKR25K_CONCEPTS), [files[i].name for i in kept],
                    np.zeros(len(kept), dtype=bool), skipped, description="MIRFLICKR-25K")


LOADERS: dict[str, Callable[[str | Path, int], ImageSet]] = {
    "cifar10": load_cifar10,
    "flickr25k": load_flickr25k,
    "folder": load_image_folder,
}


def load_dataset(name: str, root: str | Path, image_size: int) -> ImageSet:
    """Load dataset ``name`` (one of ``LOADERS``) from ``root`` at ``image_size``."""
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    data = LOADERS[name](root, image_size)
    if data.skipped:
        logger.warning("%d unreadable files were skipped", len(data.skipped))
    if len(data.images) == 0:
        raise DatasetError(f"no readable images in {root}")
    return data
