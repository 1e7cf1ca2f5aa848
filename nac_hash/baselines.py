"""Data-independent hashing baselines computed from raw features."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from nac_hash.codes import pack_bits, validate_bits


class RandomHyperplaneLSH:
    """Sign random projections (Charikar, 2002) of mean-centred features.

    ``fit`` only estimates the centre from training features; the hyperplanes are Gaussian, drawn from
    ``seed``, so two instances with the same seed and training data give the same codes.
    """

    def __init__(self, bits: int = 128, seed: int = 0) -> None:
        self.bits = validate_bits(bits)
        self.seed = seed
        self.center: np.ndarray | None = None
        self.planes: np.ndarray | None = None

    def fit(self, features: np.ndarray) -> RandomHyperplaneLSH:
        features = np.asarray(features, dtype=np.float32)
        self.center = features.mean(axis=0)
        rng = np.random.default_rng(self.seed)
        self.planes = rng.standard_normal((features.shape[1], self.bits)).astype(np.float32)
        return self

    def encode(self, features: np.ndarray) -> np.ndarray:
        """(N, d) features -> (N, bits / 8) packed codes."""
        if self.center is None or self.planes is None:
            raise RuntimeError("call fit() before encode()")
        projected = (np.asarray(features, dtype=np.float32) - self.center) @ self.planes
        return pack_bits(projected > 0)


class NotEnoughDataError(ValueError):
    """A baseline cannot be fitted on this little data (ITQ needs as many training images as code bits)."""


class ITQ:
    """Iterative quantization (Gong & Lazebnik, CVPR 2011): PCA to ``bits`` dimensions, then the rotation that
    makes the signs lose the least information, by alternating sign codes and an orthogonal Procrustes fit.
    """

    def __init__(self, bits: int = 128, iterations: int = 50, seed: int = 0) -> None:
        self.bits = validate_bits(bits)
        self.iterations = iterations
        self.seed = seed
        self.center: np.ndarray | None = None
        self.projection: np.ndarray | None = None

    def fit(self, features: np.ndarray) -> ITQ:
        features = np.asarray(features, dtype=np.float64)
        if min(features.shape) < self.bits:
            raise NotEnoughDataError(f"ITQ at {self.bits} bits needs at least {self.bits} training images and "
                                     f"feature dimensions, got {features.shape[0]} images of {features.shape[1]} "
                                     "dimensions")
        self.center = features.mean(axis=0)
        centred = features - self.center
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        pca = components[: self.bits].T
        reduced = centred @ pca
        rotation, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((self.bits, self.bits)))
        for _ in range(self.iterations):
            codes = np.where(reduced @ rotation > 0, 1.0, -1.0)
            u, _, vt = np.linalg.svd(codes.T @ reduced)
            rotation = (u @ vt).T
        self.projection = (pca @ rotation).astype(np.float32)
        self.center = self.center.astype(np.float32)
        return self

    def encode(self, features: np.ndarray) -> np.ndarray:
        """(N, d) features -> (N, bits / 8) packed codes."""
        if self.center is None or self.projection is None:
            raise RuntimeError("call fit() before encode()")
        return pack_bits((np.asarray(features, dtype=np.float32) - self.center) @ self.projection > 0)


PERCEPTUAL_HASHES = {"phash": "phash", "dhash": "dhash", "ahash": "average_hash", "whash": "whash"}


def perceptual_codes(images: Iterable[np.ndarray | Image.Image], kind: str = "phash") -> np.ndarray:
    """64-bit perceptual hashes of the ImageHash package (DCT pHash, difference dHash, average aHash, wavelet
    wHash) of uint8 RGB arrays or PIL images, packed like every other code."""
    import imagehash

    if kind not in PERCEPTUAL_HASHES:
        raise ValueError(f"unknown perceptual hash {kind!r}; choose from {', '.join(PERCEPTUAL_HASHES)}")
    hasher = getattr(imagehash, PERCEPTUAL_HASHES[kind])
    bits = [hasher(image if isinstance(image, Image.Image) else Image.fromarray(image), hash_size=8).hash.reshape(-1)
            for image in images]
    return pack_bits(np.stack(bits).astype(np.uint8)) if bits else np.zeros((0, 8), np.uint8)
