"""Milvus as the search engine of an index, beside the embedded FAISS default.

The index type ``milvus:URI`` (BIN_FLAT, exact) or ``milvus-ivf:URI`` (BIN_IVF_FLAT, Milvus servers only: Lite
has BIN_FLAT alone) keeps the codes in a
Milvus collection instead of a FAISS file: ``milvus:./photos.milvus.db`` runs Milvus Lite in-process on a
local file, ``milvus:http://host:19530`` uses a Milvus server. The collection has the fields id, code
(BINARY_VECTOR, HAMMING metric), path and label. The index directory's catalog stays the source of truth: the
state file holds a pointer to the collection, a build or rebuild fills a new collection, and a collection that
does not match its catalog (a writer died between the two) is refilled from the catalog when the index is opened.

Needs the optional dependencies ``pip install nac-hash[milvus]`` (pymilvus 2.5 and milvus-lite 2.5: the 3.x
Lite has no binary vectors).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nac_hash.atomic import write_json
from nac_hash.index_data.search_params import SearchParams

MILVUS_TYPES = {"milvus": "BIN_FLAT", "milvus-ivf": "BIN_IVF_FLAT"}
MAX_LIMIT = 16384  # Milvus's largest top-k
INSERT_BATCH = 10_000


def parse_milvus_type(index_type: str) -> tuple[str, str] | None:
    """``milvus:URI`` -> ("BIN_FLAT", URI), ``milvus-ivf:URI`` -> ("BIN_IVF_FLAT", URI); None for other types."""
    prefix, _, uri = index_type.partition(":")
    if prefix not in MILVUS_TYPES or not uri:
        return None
    return MILVUS_TYPES[prefix], uri


def _client(uri: str):  # -> pymilvus.MilvusClient
    try:
        from pymilvus import MilvusClient
    except ImportError as e:
        raise ImportError("the Milvus backend needs pymilvus and milvus-lite: pip install 'nac-hash[milvus]'") from e
    return MilvusClient(uri)


class MilvusIndex:
    """One Milvus collection of codes, searched like a :class:`~nac_hash.index_data.index.HammingIndex`."""

    def __init__(self, uri: str, collection: str, bits: int, params: SearchParams | None = None) -> None:
        self.uri, self.collection, self.bits = uri, collection, bits
        self.params = params or SearchParams()
        self.client = _client(uri)
        if self.client.has_collection(collection):
            self.client.load_collection(collection)

    def in_step(self, count: int) -> bool:
        """Whether the collection exists and holds ``count`` codes, as many as the catalog's items."""
        return self.client.has_collection(self.collection) and self.ntotal == count

    @classmethod
    def build(cls, codes: np.ndarray, ids: np.ndarray, index_type: str, bits: int,
              params: SearchParams | None = None, paths: Sequence[str] = (),
              labels: Sequence[str | None] = (), collection: str | None = None) -> MilvusIndex:
        """A new collection holding ``codes`` under ``ids`` (with their paths and labels); ``collection`` names
        it, replacing any collection of that name."""
        milvus_type, uri = parse_milvus_type(index_type) or ("", "")
        client = _client(uri)  # first: it explains a missing pymilvus
        from pymilvus import DataType, MilvusClient

        collection = collection or f"nac_hash_{uuid.uuid4().hex}"
        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=bits)
        schema.add_field("path", DataType.VARCHAR, max_length=4096)
        schema.add_field("label", DataType.VARCHAR, max_length=1024)  # "" for none: Lite has no nullable fields
        index_params = client.prepare_index_params()
        extra = {"nlist": max(1, min(4096, round(4 * np.sqrt(max(len(codes), 1)))))} if "IVF" in milvus_type else {}
        index_params.add_index("code", index_type=milvus_type, metric_type="HAMMING", params=extra)
        try:
            client.create_collection(collection, schema=schema, index_params=index_params)
            index = cls(uri, collection, bits, params)
            index.add(codes, ids, paths, labels)
        except Exception as e:
            if client.has_collection(collection):
                client.drop_collection(collection)
            raise ValueError(f"cannot build Milvus collection at {uri}: {e}") from e
        return index

    @property
    def ntotal(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @property
    def can_add(self) -> bool:
        return True

    def copy(self) -> MilvusIndex:
        """The collection is shared, not copied: writes reach it before the catalog commits. Searches drop ids
        that the catalog does not hold (yet), and a collection that drifted is refilled when the index is opened.
        """
        return self

    def add(self, codes: np.ndarray, ids: np.ndarray, paths: Sequence[str] = (),
            labels: Sequence[str | None] = ()) -> None:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        paths = list(paths) or [""] * len(codes)
        labels = list(labels) or [None] * len(codes)
        rows = [{"id": int(i), "code": code.tobytes(), "path": p, "label": label or ""}
                for i, code, p, label in zip(ids, codes, paths, labels, strict=True)]
        for start in range(0, len(rows), INSERT_BATCH):
            self.client.insert(self.collection, rows[start : start + INSERT_BATCH])
        self.client.flush(self.collection)

    def _search(self, queries: np.ndarray, limit: int) -> list[list[dict]]:
        if len(queries) == 0:
            return []
        params = {"metric_type": "HAMMING", "params": {"nprobe": self.params.nprobe}}
        return self.client.search(self.collection, data=[bytes(q) for q in np.asarray(queries, np.uint8)],
                                  anns_field="code", limit=limit, search_params=params)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`HammingIndex.search`: (Q, k) distances and ids, padded with bits + 1 and -1."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        distances = np.full((len(queries), k), self.bits + 1, dtype=np.int32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for q, hits in enumerate(self._search(queries, min(k, MAX_LIMIT))):
            ordered = sorted(hits, key=lambda h: (h["distance"], h["id"]))
            distances[q, : len(ordered)] = [round(h["distance"]) for h in ordered]
            ids[q, : len(ordered)] = [h["id"] for h in ordered]
        return distances, ids

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every code within ``radius``, nearest first (at most 16,384 per query, Milvus's top-k limit)."""
        results = []
        for hits in self._search(queries, min(MAX_LIMIT, max(self.ntotal, 1))):
            kept = sorted((round(h["distance"]), h["id"]) for h in hits if h["distance"] <= radius)
            if len(hits) == MAX_LIMIT and len(kept) == MAX_LIMIT:
                raise ValueError(f"more than {MAX_LIMIT} codes lie within distance {radius}; use a smaller radius")
            results.append((np.array([d for d, _ in kept], np.int32), np.array([i for _, i in kept], np.int64)))
        return results

    def save(self, path: str | Path) -> None:
        """Write the pointer to this collection as the state's index file."""
        write_json(path, {"milvus": {"uri": self.uri, "collection": self.collection, "bits": self.bits}})

    def refilled(self, codes: np.ndarray, ids: np.ndarray, index_type: str, paths: Sequence[str] = (),
                 labels: Sequence[str | None] = ()) -> MilvusIndex:
        """This collection, emptied and filled with exactly these codes."""
        return MilvusIndex.build(codes, ids, index_type, self.bits, self.params, paths, labels,
                                 collection=self.collection)

    def __str__(self) -> str:
        return f"Milvus collection {self.collection}"

    @classmethod
    def load(cls, path: str | Path, ids: np.ndarray, mmap: bool = False,
             params: SearchParams | None = None) -> MilvusIndex:
        if mmap:
            raise ValueError("a Milvus index cannot be memory-mapped; only flat FAISS indexes can")
        pointer = _pointer(Path(path))
        if pointer is None:
            raise ValueError(f"{path} does not point to a Milvus collection")
        return cls(pointer["uri"], pointer["collection"], pointer["bits"], params)


def _pointer(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    return json.loads(text)["milvus"] if text.startswith("{") else None


def drop_unless_shared(stale: Path, current: Path) -> None:
    """Drop the Milvus collection the stale index file ``stale`` points to, unless ``current`` points to it too."""
    pointer = _pointer(stale)
    if pointer is not None and pointer != _pointer(current):
        _client(pointer["uri"]).drop_collection(pointer["collection"])
