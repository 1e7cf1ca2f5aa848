"""Where the quickstart gets CIFAR-10: a folder it names, one already unpacked, the project's archive, or the web.

The folder returned always has the class-folder layout (``train/<class>/`` and ``test/<class>/``) that
``nac-hash index build``, ``search`` and ``eval`` read. Downloaded, the official python batches are written out
as lossless PNG files, so results on them are labelled "CIFAR-10"; the project's JPEG copy keeps its label
"CIFAR-10 (JPEG copy)" (:func:`nac_hash.training.datasets.load_cifar10`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

from nac_hash.progress import progress_bar
from nac_hash.training.datasets import CIFAR10_CLASSES, CIFAR10_MD5, CIFAR10_URL, DatasetError, read_cifar_batch
from nac_hash.training.fetch import DownloadError, fetch

logger = logging.getLogger(__name__)

URL_VARIABLE = "NAC_HASH_CIFAR10_URL"  # a mirror of the official archive
MD5_VARIABLE = "NAC_HASH_CIFAR10_MD5"  # that mirror's checksum, where its archive differs from the official one
COPY_ARCHIVE = Path("../shared/data/cifar-10-images.tar.gz")  # the JPEG copy beside a project checkout
FOLDER_NAMES = ("CIFAR-10-images", "CIFAR-10")  # the JPEG copy's folder, and the one written from the batches
BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


def is_class_layout(folder: Path) -> bool:
    return all((folder / part / name).is_dir() for part in ("train", "test") for name in CIFAR10_CLASSES)


def cifar10_folder(data_dir: Path = Path("data"), progress: bool = True) -> Path:
    """The CIFAR-10 class-folder layout: ``$DATA_ROOT`` if set, else one in ``data_dir``, else unpacked from
    the project's archive where there is one, else downloaded (``$NAC_HASH_CIFAR10_URL`` overrides the address).

    Raises:
        DatasetError: ``$DATA_ROOT`` is not such a folder.
        DownloadError: the download failed (the message says to set ``DATA_ROOT`` when offline).
    """
    if os.environ.get("DATA_ROOT"):
        folder = Path(os.environ["DATA_ROOT"])
        if not is_class_layout(folder):
            raise DatasetError(f"DATA_ROOT={folder} does not hold CIFAR-10's train/<class>/ and test/<class>/ folders")
        return folder
    for name in FOLDER_NAMES:
        if is_class_layout(data_dir / name):
            return data_dir / name
    if COPY_ARCHIVE.is_file():
        logger.info("unpacking %s into %s", COPY_ARCHIVE, data_dir)
        return _unpacked(COPY_ARCHIVE, data_dir, FOLDER_NAMES[0])
    url = os.environ.get(URL_VARIABLE, CIFAR10_URL)
    try:
        archive = fetch(url, data_dir / "cifar-10-python.tar.gz", os.environ.get(MD5_VARIABLE, CIFAR10_MD5), progress)
    except DownloadError as e:
        raise DownloadError(f"{e}; set DATA_ROOT to a folder that holds CIFAR-10 (train/<class>/, test/<class>/)"
                            ) from e
    return write_class_folders(archive, data_dir / FOLDER_NAMES[1], progress)


def _unpacked(archive: Path, data_dir: Path, name: str) -> Path:
    """Unpack ``archive`` (which holds the folder ``name``) into ``data_dir``; only ``name`` appears there, whole."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".unpack-") as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
        if not is_class_layout(Path(tmp) / name):
            raise DatasetError(f"{archive} does not hold {name}/ with CIFAR-10's class folders")
        os.replace(Path(tmp) / name, data_dir / name)
    return data_dir / name


def write_class_folders(archive: Path, folder: Path, progress: bool = True) -> Path:
    """The official archive's six python batches -> ``folder/{train,test}/<class>/NNNN.png``, numbered per class
    in order of appearance (as the JPEG copy is). Written beside ``folder`` and renamed into place when whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".cifar10-") as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, members=[m for m in tar.getmembers() if Path(m.name).name in BATCHES], filter="data")
        found = {p.name: p for p in Path(tmp).rglob("*") if p.name in BATCHES}
        missing = [name for name in BATCHES if name not in found]
        if missing:
            raise DatasetError(f"{archive} is not the CIFAR-10 python archive: no {', '.join(missing)}")
        out, written = Path(tmp) / "out", Counter()
        for name in BATCHES:
            _write_batch(found[name], out / ("test" if name == "test_batch" else "train"), written, progress)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(out, folder)
    return folder


def _write_batch(batch: Path, part: Path, written: Counter, progress: bool) -> None:
    """Write one batch's images into ``part``'s class folders; ``written`` counts the files of each folder."""
    images, labels = read_cifar_batch(batch)
    for image, label in progress_bar(zip(images, labels, strict=True), total=len(images), desc=batch.name,
                                     unit="image", disable=not progress):
        target = part / CIFAR10_CLASSES[label]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target / f"{written[target]:04d}.png")
        written[target] += 1
