"""Binary codes: sign -> bits -> packed bytes, and Hamming distance.

Bit order (one convention everywhere in nac-hash, and the one FAISS binary indexes store):
bit ``j`` of a ``D``-bit code lives in byte ``j // 8`` at position ``7 - j % 8``, i.e. the most
significant bit of each byte comes first (NumPy's ``packbits`` with ``bitorder="big"``). Bit ``j``
is 1 exactly when the ``j``-th pre-activation is strictly positive, so ``sign(0)`` counts as -1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def validate_bits(bits: int) -> int:
    """Return ``bits`` if it is a supported code length (a multiple of 8 from 16 to 256)."""
    if not isinstance(bits, int) or bits % 8 or not 16 <= bits <= 256:
        raise ValueError(f"code length must be a multiple of 8 from 16 to 256, got {bits!r}")
    return bits


def to_bits(activations: torch.Tensor | np.ndarray) -> np.ndarray:
    """Binarise pre-activations of shape (N, D) into a {0, 1} uint8 array (1 where positive)."""
    if not isinstance(activations, np.ndarray):  # a torch.Tensor (torch is not imported for this test)
        activations = activations.detach().float().cpu().numpy()
    return (np.asarray(activations) > 0).astype(np.uint8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a (N, D) array of {0, 1} into (N, D / 8) uint8 bytes, most significant bit first."""
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] % 8:
        raise ValueError(f"expected (N, D) bits with D a multiple of 8, got shape {bits.shape}")
    return np.packbits(bits.astype(np.uint8), axis=1, bitorder="big")


def unpack_bits(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (N, D / 8) uint8 -> (N, D) {0, 1} uint8."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.ndim != 2:
        raise ValueError(f"expected (N, B) packed bytes, got shape {packed.shape}")
    return np.unpackbits(packed, axis=1, bitorder="big")


def pack_codes(activations: torch.Tensor | np.ndarray) -> np.ndarray:
    """Pre-activations (N, D) -> packed sign codes (N, D / 8) uint8."""
    return pack_bits(to_bits(activations))


def hamming_distance(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distance between packed codes.

    Args:
        queries: (Q, B) uint8 packed codes.
        database: (N, B) uint8 packed codes with the same B.

    Returns:
        (Q, N) uint16 matrix of differing bit counts.
    """
    queries = np.ascontiguousarray(queries, dtype=np.uint8)
    database = np.ascontiguousarray(database, dtype=np.uint8)
    if queries.ndim != 2 or database.ndim != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(f"code shapes do not match: {queries.shape} vs {database.shape}")
    # Popcount over 64-bit words when the code length allows it: 8x fewer XORs than bytes.
    word = np.uint64 if queries.shape[1] % 8 == 0 else np.uint8
    q = queries.view(word)
    d = database.view(word)
    distance = np.zeros((q.shape[0], d.shape[0]), dtype=np.uint16)
    for w in range(q.shape[1]):
        distance += np.bitwise_count(q[:, w, None] ^ d[None, :, w]).astype(np.uint16)
    return distance
