import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nac_hash.training.datasets import (
    FLICKR25K_CONCEPTS,
    DatasetError,
    load_cifar10,
    load_dataset,
    load_flickr25k,
    load_image_folder,
)


def add_bad_files(folder: Path) -> None:
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    good = folder / "0000.png"
    (folder / "truncated.png").write_bytes(good.read_bytes()[:60])


def test_image_folder_with_classes_and_bad_files(class_folders):
    add_bad_files(class_folders / "class1")
    data = load_image_folder(class_folders, 16)
    assert data.images.shape == (36, 16, 16, 3) and data.images.dtype == np.uint8
    assert data.class_names == ["class0", "class1", "class2"]
    assert np.bincount(data.labels).tolist() == [12, 12, 12]
    assert sorted(Path(p).name for p, _ in data.skipped) == ["empty.jpg", "notes.png", "truncated.png"]


def test_unlabelled_folder_any_extension_case(tmp_path):
    for i, ext in enumerate([".JPG", ".png", ".webp", ".bmp", ".gif"]):
        Image.new("RGB", (40, 30), (i * 40, 0, 0)).save(tmp_path / f"img{i}{ext}")
    (tmp_path / "readme.txt").write_text("ignored")
    data = load_image_folder(tmp_path, 32)
    assert data.images.shape == (5, 32, 32, 3)
    assert (data.labels == -1).all() and not data.skipped


def write_cifar_batches(root: Path, per_batch: int = 20) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist(), b"batch_label": name.encode()}
        (root / name).write_bytes(pickle.dumps(batch))


def test_cifar10_python_batches(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    data = load_cifar10(tmp_path)
    assert data.images.shape == (120, 32, 32, 3)
    assert data.is_test.sum() == 20 and data.is_test[-20:].all()
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    first = raw[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(data.images[0], first) and data.labels[0] == raw[b"labels"][0]


class Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_batch_loader_refuses_foreign_objects(tmp_path):
    write_cifar_batches(tmp_path / "batches")
    (tmp_path / "batches" / "data_batch_3").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    with pytest.raises(DatasetError, match="refusing"):
        load_cifar10(tmp_path / "batches")


def test_cifar10_jpeg_layout(tmp_path):
    for part, count in (("train", 3), ("test", 2)):
        for label, name in enumerate(["airplane", "automobile"]):
            folder = tmp_path / "CIFAR-10-images" / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (32, 32), (label * 100, i, 0)).save(folder / f"{i:04d}.jpg")
    data = load_cifar10(tmp_path)
    assert len(data.images) == 10 and data.is_test.sum() == 4
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    assert data.description == "CIFAR-10 (JPEG copy)"


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="neither"):
        load_cifar10(tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet", tmp_path, 32)


def test_flickr25k_layout(tmp_path):
    for i in range(1, 7):
        Image.new("RGB", (50, 40), (i * 30, 0, 0)).save(tmp_path / f"im{i}.jpg")
    (tmp_path / "im7.jpg").write_bytes(b"corrupt")
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    for concept in FLICKR25K_CONCEPTS:
        (annotations / f"{concept}.txt").write_text("")
    (annotations / "sky.txt").write_text("1\n3\n7\n")
    (annotations / "sky_r1.txt").write_text("2\n")  # strict relevance file: ignored
    (annotations / "dog.txt").write_text("3\n")
    data = load_flickr25k(tmp_path, 24)
    assert data.images.shape == (6, 24, 24, 3) and len(data.skipped) == 1
    sky, dog = FLICKR25K_CONCEPTS.index("sky"), FLICKR25K_CONCEPTS.index("dog")
    assert data.labels[:, sky].tolist() == [1, 0, 1, 0, 0, 0]
    assert data.labels[:, dog].tolist() == [0, 0, 1, 0, 0, 0]
