"""Shared fixtures: small generated image folders, an index of one, and (with ../shared beside the clone)
CIFAR-10 JPEGs."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from helpers import CIFAR_ARCHIVE, write_class_folders

# Starlette's TestClient sends "Host: testserver"; the service refuses writes naming hosts it does not serve.
os.environ.setdefault("NAC_HASH_ALLOWED_HOSTS", "testserver")


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "images")


@pytest.fixture
def index(class_folders: Path, tmp_path: Path) -> Path:
    """A flat index of ``class_folders`` built with the packaged default model."""
    from nac_hash.index_data.config import IndexOptions
    from nac_hash.index_data.indexer import build

    build([class_folders], tmp_path / "index", IndexOptions(progress=False))
    return tmp_path / "index"


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full CIFAR-10 JPEG copy, extracted once per test session (skipped without ../shared)."""
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(f"{CIFAR_ARCHIVE} not available")
    root = tmp_path_factory.mktemp("cifar")
    with tarfile.open(CIFAR_ARCHIVE) as archive:
        archive.extractall(root, filter="data")
    return root / "CIFAR-10-images"
