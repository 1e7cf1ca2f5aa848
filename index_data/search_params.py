"""Search-time settings of the approximate index types, importable without FAISS (the CLI builds options from it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchParams:
    """Search-time knobs of the approximate index types (ignored by the others).

    Attributes:
        nprobe: inverted lists visited per query by IVF indexes.
        ef_search: candidate list size of HNSW searches.
        nflip: bits flipped per hash table by multi-hash searches.
    """

    nprobe: int = 16
    ef_search: int = 128
    nflip: int = 1
