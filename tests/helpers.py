"""Helpers shared by the tests: generated image folders and code sets, and the exact k-NN check."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from nac_hash.codes import hamming_distance, pack_bits

REPO = Path(__file__).resolve().parents[1]


def import_benchmark(name: str) -> ModuleType:
    """The script benchmarks/<name>.py as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Headless Chromium for the browser tests; without these flags it keeps trying to reach Google's servers.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BITS = 128
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


def write_smooth_images(root: Path, count: int, size: int = 96, seed: int = 0) -> Path:
    """Distinct smooth images (random 3 x 3 colour fields, enlarged): what perceptual hashes tell apart."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8))
        coarse.resize((size, size), Image.Resampling.BICUBIC).save(root / f"{i:04d}.png")
    return root


def clustered_codes(n: int, clusters: int = 20, flip: float = 0.08, seed: int = 0) -> np.ndarray:
    """Codes scattered around 20 fixed centres, like a trained model's (uniform random codes are all far apart)."""
    centres = np.random.default_rng(1234).integers(0, 2, (clusters, BITS))
    rng = np.random.default_rng(seed)
    bits = centres[rng.integers(0, clusters, n)] ^ (rng.random((n, BITS)) < flip)
    return pack_bits(bits.astype(np.uint8))


def check_exact_knn(distances: np.ndarray, ids: np.ndarray, queries: np.ndarray, codes: np.ndarray,
                    db_ids: np.ndarray, k: int) -> None:
    """Distances equal the reference's k smallest; ids may differ only among codes tied at the k-th distance."""
    reference = hamming_distance(queries, codes).astype(np.int32)
    for q in range(len(queries)):
        expected = np.sort(reference[q])[:k]
        np.testing.assert_array_equal(distances[q], expected)
        position = np.searchsorted(db_ids, ids[q])
        np.testing.assert_array_equal(reference[q, position], distances[q])
        assert len(set(ids[q].tolist())) == k
        kth = expected[-1]
        assert set(db_ids[reference[q] < kth]) <= set(ids[q].tolist())
