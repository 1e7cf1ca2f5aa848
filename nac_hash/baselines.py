"""Data-independent hashing baselines computed from raw features."""

from __future__ import annotations

import numpy as np

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
