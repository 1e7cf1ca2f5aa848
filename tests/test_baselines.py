"""Hashing baselines (LSH, ITQ, pHash) and the parts of `nac-hash bench map` that do not need a full dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nac_hash.baselines import ITQ, RandomHyperplaneLSH, perceptual_codes
from nac_hash.cli.bench_map import plot_pr_curves, retrieval_grid, sklearn_map
from nac_hash.codes import hamming_distance, unpack_bits
from nac_hash.training.datasets import ImageSet
from nac_hash.training.evaluate import score_codes
from nac_hash.training.splits import Split


def clustered_features(n: int = 600, dim: int = 256, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dim))
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32), labels


def quantization_loss(features: np.ndarray, itq: ITQ) -> float:
    projected = (features - itq.center) @ itq.projection
    return float(np.square(np.sign(projected) - projected).sum())


def test_itq_rotation_is_orthogonal_and_lowers_quantization_loss():
    features, _ = clustered_features()
    fitted = ITQ(32, iterations=50).fit(features)
    unrotated = ITQ(32, iterations=0).fit(features)  # PCA and the random initial rotation only
    gram = fitted.projection.T @ fitted.projection
    np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-3)  # PCA directions stay orthogonal
    assert quantization_loss(features, fitted) < 0.95 * quantization_loss(features, unrotated)


def test_itq_and_lsh_codes_retrieve_the_right_class():
    features, labels = clustered_features()
    for method in (ITQ(32), RandomHyperplaneLSH(32)):
        codes = method.fit(features).encode(features)
        assert codes.shape == (len(features), 4)
        distance = hamming_distance(codes[:50], codes)
        distance[np.arange(50), np.arange(50)] = 999
        assert np.mean(labels[distance.argmin(axis=1)] == labels[:50]) > 0.9
    assert 0.3 < unpack_bits(ITQ(32).fit(features).encode(features)).mean() < 0.7


def test_itq_needs_enough_dimensions():
    with pytest.raises(ValueError, match="at least 64"):
        ITQ(64).fit(np.zeros((10, 20), np.float32))


def test_phash_is_stable_under_small_changes_and_tells_images_apart():
    rng = np.random.default_rng(0)
    image = np.array(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32)))
    brighter = np.clip(image.astype(int) + 12, 0, 255).astype(np.uint8)
    other = np.array(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32)))
    codes = perceptual_codes(np.stack([image, image, brighter, other]))
    assert codes.shape == (4, 8)
    distance = hamming_distance(codes[:1], codes)[0]
    assert distance[1] == 0 and distance[2] <= 6 and distance[3] >= 16


@pytest.fixture
def small_set():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    images = np.zeros((300, 8, 8, 3), np.uint8)
    images[np.arange(300), :, :, labels] = 200
    codes = np.packbits((rng.random((300, 32)) < 0.5) ^ (labels[:, None] == np.arange(32) % 3), axis=1)
    data = ImageSet(images, labels, ["a", "b", "c"], [str(i) for i in range(300)], np.zeros(300, bool))
    split = Split("test", 0, np.arange(100), np.arange(100, 140), np.arange(140, 300))
    return codes.astype(np.uint8), data, split


def test_our_map_agrees_with_scikit_learn(small_set):
    codes, data, split = small_set
    ours = score_codes(codes, data, split, None)["map_all"]
    assert abs(ours - sklearn_map(codes, data, split, queries=len(split.query))) < 1e-9
    assert 0.2 < ours < 1.0


def test_plots_are_written(small_set, tmp_path):
    codes, data, split = small_set
    row = {"method": "test", "bits": 32, **score_codes(codes, data, split, None)}
    plot_pr_curves([row], tmp_path / "pr.png", "test")
    retrieval_grid(codes, data, split, tmp_path / "grid.png", queries=4, top=5)
    assert Image.open(tmp_path / "pr.png").format == "PNG"
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (6 * (16 + 6) + 8, 4 * (16 + 6))
        pixels = np.asarray(grid.convert("RGB"))
    green, red = (pixels == (0, 128, 0)).all(axis=2).any(), (pixels == (255, 0, 0)).all(axis=2).any()
    assert green and red  # relevant and irrelevant neighbours are both framed
