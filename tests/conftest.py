"""Shared fixtures: small generated image folders and, when ../shared is beside the clone, CIFAR-10 JPEGs."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = REPO.parent / "shared" / "data" / "cifar-10-images.tar.gz"


def write_class_folders(root: Path, classes: int = 3, per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    """Images whose colour depends on the class, so a model can tell the classes apart."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.zeros((size, size, 3), np.float32)
        base[..., c % 3] = 200
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "images")


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full CIFAR-10 JPEG copy, extracted once per test session (skipped without ../shared)."""
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(f"{CIFAR_ARCHIVE} not available")
    root = tmp_path_factory.mktemp("cifar")
    with tarfile.open(CIFAR_ARCHIVE) as archive:
        archive.extractall(root, filter="data")
    return root / "CIFAR-10-images"
