"""Index backends: the interface every search engine implements, and the one registry that picks the engine
for an index-type string or a state file.

An index directory's catalog is the source of truth; the engine holds the codes for searching. FAISS (the
default, :mod:`~nac_hash.index_data.index`) keeps them in the state's index file; Milvus
(:mod:`~nac_hash.index_data.milvus_index`, ``milvus:URI``) keeps them in a collection the state file points
to. A new engine is one class implementing :class:`CodeIndex` plus one :class:`Backend` entry in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from nac_hash.index_data.index import HammingIndex, new_faiss_index
from nac_hash.index_data.milvus_index import MilvusIndex, drop_unless_shared, parse_milvus_type
from nac_hash.index_data.search_params import SearchParams


class CodeIndex(Protocol):
    """Packed codes under increasing item ids, searched by Hamming distance."""

    params: SearchParams

    @property
    def bits(self) -> int: ...

    @property
    def ntotal(self) -> int: ...

    @property
    def can_add(self) -> bool:
        """Whether codes can be appended in place (else the index is rebuilt from all codes)."""

    def copy(self) -> CodeIndex:
        """An index to change while searches go on using this one."""

    def add(self, codes: np.ndarray, ids: np.ndarray, paths: Sequence[str] = (),
            labels: Sequence[str | None] = ()) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) distances and ids, nearest first, padded with bits + 1 and -1."""

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, (distances, ids) of every code within ``radius``, nearest first."""

    def save(self, path: str | Path) -> None:
        """Write the state's index file (the codes, or a pointer to where the engine keeps them)."""

    def in_step(self, count: int) -> bool:
        """Whether the engine holds ``count`` codes, as many as the catalog's items."""

    def refilled(self, codes: np.ndarray, ids: np.ndarray, index_type: str, paths: Sequence[str] = (),
                 labels: Sequence[str | None] = ()) -> CodeIndex:
        """The same engine (for Milvus, the same collection) holding exactly these codes."""


@dataclass(frozen=True)
class Backend:
    """One engine, as the store and the indexer use it. Its name is recorded in the catalog's meta and names
    its state files (``<name>-<state>.index``)."""

    name: str
    accepts: Callable[[str], bool]  # whether an index-type string names this engine
    check: Callable[[str, int], None]  # raise IndexTypeError for a type that cannot be built, before any work
    build: Callable[..., CodeIndex]  # (codes, ids, index_type, bits, params, paths, labels)
    load: Callable[..., CodeIndex]  # (path, ids, mmap=, params=)
    discard_file: Callable[[Path, Path], None]  # release what a stale state file holds (it is then deleted)


def _no_check(index_type: str, bits: int) -> None:
    """Milvus types are checked by the server when the collection is created."""


def _check_faiss_type(index_type: str, bits: int) -> None:
    new_faiss_index(index_type, bits, 0)  # raises IndexTypeError for an unknown type or factory string


def _nothing_to_release(stale: Path, current: Path) -> None:
    """A FAISS state file holds the codes itself: deleting it is all there is to do."""


BACKENDS: tuple[Backend, ...] = (  # the first that accepts wins: FAISS takes every type Milvus does not
    Backend("milvus", lambda index_type: parse_milvus_type(index_type) is not None, _no_check, MilvusIndex.build,
            MilvusIndex.load, drop_unless_shared),
    Backend("faiss", lambda index_type: True, _check_faiss_type, HammingIndex.build, HammingIndex.load,
            _nothing_to_release),
)


def backend_for_type(index_type: str) -> Backend:
    return next(b for b in BACKENDS if b.accepts(index_type))


def backend_named(name: str) -> Backend:
    return next(b for b in BACKENDS if b.name == name)


def state_file(index_dir: Path, state: str, backend: str) -> Path:
    """The file of ``state``, named by its engine: ``faiss-<state>.index``, ``milvus-<state>.index``."""
    return index_dir / f"{backend}-{state}.index"


def state_files(index_dir: Path) -> Iterator[tuple[Path, Backend]]:
    """Every state file in ``index_dir`` with the engine that wrote it.

    Indexes written before files were named by engine kept a Milvus state, a small JSON pointer, in a
    ``faiss-`` file too: such a file is still told apart by its first byte.
    """
    for backend in BACKENDS:
        for path in index_dir.glob(f"{backend.name}-*.index"):
            legacy_milvus = backend.name == "faiss" and _first_byte(path) == b"{"
            yield path, backend_named("milvus") if legacy_milvus else backend


def check_index_type(index_type: str, bits: int) -> None:
    """Raise :class:`~nac_hash.index_data.index.IndexTypeError` now, before any encoding, if it cannot be built."""
    backend_for_type(index_type).check(index_type, bits)


def build_index(codes: np.ndarray, ids: np.ndarray, index_type: str, bits: int, params: SearchParams | None = None,
                paths: Sequence[str] = (), labels: Sequence[str | None] = ()) -> CodeIndex:
    """An index of ``index_type`` over ``codes`` with item ``ids`` (paths and labels for engines that store them)."""
    return backend_for_type(index_type).build(codes, ids, index_type, bits, params, paths, labels)


def _first_byte(path: Path) -> bytes:
    """A state file's first byte, without reading the rest (a FAISS file holds every code)."""
    with open(path, "rb") as f:
        return f.read(1)


def load_index_file(path: str | Path, backend: str, ids: np.ndarray, mmap: bool = False,
                    params: SearchParams | None = None) -> CodeIndex:
    """The index a state file of ``backend`` holds."""
    return backend_named(backend).load(path, ids, mmap=mmap, params=params)
