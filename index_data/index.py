"""FAISS binary indexes over packed codes, searched by Hamming distance.

FAISS stores codes by position (0, 1, 2, ... in the order they were added); :class:`HammingIndex` keeps
the item id of every position beside it, so every index type (flat, IVF, HNSW, multi-hash or any
FAISS binary factory string) answers with item ids. Codes are always added in increasing id order, so the
id array is sorted and is exactly the catalog's ids in id order.

FAISS is imported here and nowhere on the training path, which runs without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from nac_hash.atomic import atomic_path
from nac_hash.codes import validate_bits
from nac_hash.index_data.search_params import SearchParams

INDEX_TYPES = ("flat", "ivf", "hnsw", "multihash")


class IndexTypeError(ValueError):
    """An index type or FAISS factory string that cannot be built."""


def set_threads(threads: int | None) -> None:
    """Threads FAISS may use for searches and builds (None leaves FAISS's default: all cores)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"thread count must be at least 1, got {threads}")
        faiss.omp_set_num_threads(threads)


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` codes: about 4 sqrt(n), with at least 39 training codes per list."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def multihash_exact_radius(bits: int, nflip: int) -> int:
    """The radius within which the multi-hash index (tables of 32 bits) finds every code: a code within it
    differs from the query in at most ``nflip`` bits in one table at least (pigeonhole principle)."""
    return (bits // 32) * (nflip + 1) - 1


def new_faiss_index(index_type: str, bits: int, n: int) -> faiss.IndexBinary:
    """An empty FAISS binary index of ``index_type`` sized for about ``n`` codes."""
    validate_bits(bits)
    if index_type == "flat":
        return faiss.IndexBinaryFlat(bits)
    if index_type == "ivf":
        return faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, ivf_lists(n))
    if index_type == "hnsw":
        return faiss.IndexBinaryHNSW(bits, 32)
    if index_type == "multihash":
        # Tables of 32 bits (4 for 128-bit codes); with nflip flips per table a search finds every code within
        # distance 4 * (nflip + 1) - 1 (pigeonhole principle) and some beyond.
        return faiss.IndexBinaryMultiHash(bits, bits // 32, 32)
    try:
        return faiss.index_binary_factory(bits, index_type)
    except RuntimeError as e:
        raise IndexTypeError(
            f"unknown index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}, a FAISS binary factory "
            f"string such as 'BIVF1024' or 'BHNSW32', or milvus:URI ({str(e).splitlines()[-1]})"
        ) from e


def _apply_params(index: faiss.IndexBinary, params: SearchParams) -> None:
    if isinstance(index, faiss.IndexBinaryIVF):
        index.nprobe = min(params.nprobe, index.nlist)
    elif isinstance(index, faiss.IndexBinaryHNSW):
        index.hnsw.efSearch = params.ef_search
    elif isinstance(index, faiss.IndexBinaryMultiHash):
        index.nflip = params.nflip


def _check_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.ndim != 2 or codes.shape[1] * 8 != bits:
        raise ValueError(f"expected (N, {bits // 8}) packed codes for {bits}-bit codes, got shape {codes.shape}")
    return codes


class HammingIndex:
    """A FAISS binary index plus the item id of each stored code.

    Args:
        index: a FAISS binary index whose position ``i`` holds the code of item ``ids[i]``.
        ids: (N,) int64 item ids in increasing order.
        params: search-time settings of approximate types.
    """

    def __init__(self, index: faiss.IndexBinary, ids: np.ndarray, params: SearchParams | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != index.ntotal:
            raise ValueError(f"the FAISS index holds {index.ntotal} codes but {len(ids)} ids were given")
        self._owner = index  # the downcast proxy below does not own the C++ object; this reference does
        self.index = faiss.downcast_IndexBinary(index)
        self.ids = ids
        self.params = params or SearchParams()
        _apply_params(self.index, self.params)

    @classmethod
    def build(cls, codes: np.ndarray, ids: np.ndarray, index_type: str = "flat", bits: int = 128,
              params: SearchParams | None = None, paths: Sequence[str] = (),
              labels: Sequence[str | None] = ()) -> HammingIndex:
        """Build an index of ``index_type`` over ``codes`` (N, bits / 8) for the increasing ``ids`` (paths and
        labels are for engines that store them)."""
        codes = _check_codes(codes, bits)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(codes):
            raise ValueError(f"{len(codes)} codes but {len(ids)} ids")
        if np.any(np.diff(ids) <= 0):
            raise ValueError("ids must be strictly increasing")
        index = new_faiss_index(index_type, bits, len(codes))
        if not index.is_trained and len(codes):
            index.train(codes)
        if len(codes):
            index.add(codes)
        return cls(index, ids, params)

    @property
    def bits(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def can_add(self) -> bool:
        """Whether codes can be appended in place (an untrained IVF has to be rebuilt instead)."""
        return bool(self.index.is_trained)

    def copy(self) -> HammingIndex:
        """An independent copy, to change while searches go on using this one.

        It goes through FAISS's serialisation, which every binary index type supports (cloning does not).
        """
        copied = faiss.deserialize_index_binary(faiss.serialize_index_binary(self.index))
        return HammingIndex(copied, self.ids.copy(), self.params)

    def add(self, codes: np.ndarray, ids: np.ndarray, paths: Sequence[str] = (),
            labels: Sequence[str | None] = ()) -> None:
        """Append codes whose ids are all larger than every id already stored (paths and labels are for engines
        that store them, like Milvus)."""
        codes = _check_codes(codes, self.bits)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(codes):
            raise ValueError(f"{len(codes)} codes but {len(ids)} ids")
        if len(ids) == 0:
            return
        if np.any(np.diff(ids) <= 0) or (len(self.ids) and ids[0] <= self.ids[-1]):
            raise ValueError("new ids must be increasing and larger than the ids already in the index")
        if not self.can_add:
            raise ValueError("this index is not trained yet; rebuild it from all codes")
        self.index.add(codes)
        self.ids = np.concatenate([self.ids, ids])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest codes of each query.

        Returns:
            (Q, k) int32 Hamming distances and (Q, k) int64 item ids, nearest first; where fewer than ``k``
            results exist the id is -1 and the distance is ``bits + 1``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        queries = _check_codes(queries, self.bits)
        k_faiss = min(k, max(self.ntotal, 1))
        distances, positions = self.index.search(queries, k_faiss)
        found = positions >= 0
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        out_distances = np.full((len(queries), k), self.bits + 1, dtype=np.int32)
        ids[:, :k_faiss][found] = self.ids[positions[found]]
        out_distances[:, :k_faiss][found] = distances[found]
        return out_distances, ids

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every code within Hamming distance ``radius`` (inclusive) of each query, nearest first.

        Returns:
            Per query, (distances int32, ids int64) sorted by distance, then id.
        """
        if radius < 0:
            raise ValueError(f"radius must be non-negative, got {radius}")
        queries = _check_codes(queries, self.bits)
        if self.ntotal == 0:
            return [(np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in queries]
        try:
            # FAISS's binary range search keeps distances strictly below its radius.
            limits, distances, positions = self.index.range_search(queries, radius + 1)
        except RuntimeError as e:
            raise IndexTypeError(f"{type(self.index).__name__} does not support radius search; "
                                 "use a flat, ivf or multihash index, or top-k with a maximum distance") from e
        results = []
        for q in range(len(queries)):
            d, p = distances[limits[q] : limits[q + 1]], positions[limits[q] : limits[q + 1]]
            ids = self.ids[p]
            order = np.lexsort((ids, d))
            results.append((d[order].astype(np.int32), ids[order]))
        return results

    def in_step(self, count: int) -> bool:
        """Always: the file cannot drift, since loading it checks it against the catalog's ids."""
        return True

    def refilled(self, codes: np.ndarray, ids: np.ndarray, index_type: str, paths: Sequence[str] = (),
                 labels: Sequence[str | None] = ()) -> HammingIndex:
        return HammingIndex.build(codes, ids, index_type, self.bits, self.params)

    def save(self, path: str | Path) -> None:
        """Write the FAISS index atomically (the ids live in the catalog, not in this file)."""
        with atomic_path(path) as tmp:
            faiss.write_index_binary(self.index, str(tmp))

    @classmethod
    def load(cls, path: str | Path, ids: np.ndarray, mmap: bool = False,
             params: SearchParams | None = None) -> HammingIndex:
        """Read an index written by :meth:`save`; ``mmap`` maps a flat index's codes read-only from disk.

        A memory-mapped index must never be added to: FAISS aborts the process on writes to mapped memory,
        so callers open it read-only.
        """
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index_binary(str(path), flags)
        except RuntimeError as e:
            raise OSError(f"cannot read FAISS index {path}: {str(e).splitlines()[-1]}") from e
        return cls(index, ids, params)
