"""The search API shared by the command line and the service.

A :class:`Searcher` holds an index directory's catalog, its FAISS index and the model that encodes queries.
It answers batches of queries, given as images or as packed codes, with item metadata, by top-k or by
Hamming radius.

Hits at equal Hamming distance are ordered by a second key, never by item id (which follows folder order):
for an image query, by how strongly its real-valued pre-activations agree with the hit's bits (the
asymmetric score sum_j a_j * (2 b_j - 1), higher first); for a query given as a code, by a fixed hash of the
item id (a seeded shuffle). An image query's one scan of the index fetches ``TIE_OVERFETCH`` times k
candidates, so that when a tie crosses the k-th place (with integer distances, it mostly does) the score picks
which tied hits make the cut. A code query fetches k: its key carries no information worth a longer list, so
FAISS's scan order decides its cut.

Metadata comes from an in-memory :class:`ItemTable`, and a query's :class:`Hits` are columns: a :class:`Hit`
object is made only for a hit that is read.

Copies are found by the index's copy codes (:class:`nac_hash.index_data.store.CopyCodes`): where the catalog
keeps them, a flat Hamming index over them is built in memory at the first duplicates query of each state (a
copy model's distance lies beyond what a multi-hash index finds exactly, so it is a scan anyway).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nac_hash.checkpoint import CheckpointError
from nac_hash.codes import pack_codes, unpack_bits
from nac_hash.errors import NacHashError
from nac_hash.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image
from nac_hash.index_data.backends import CodeIndex
from nac_hash.index_data.catalog import Item
from nac_hash.index_data.index import HammingIndex, set_threads
from nac_hash.index_data.item_table import ItemTable
from nac_hash.index_data.search_params import SearchParams
from nac_hash.index_data.store import CheckpointMismatchError, IndexStore
from nac_hash.inference import code_logits
from nac_hash.models import HashingModel

logger = logging.getLogger(__name__)

TIE_OVERFETCH = 4
Queries = tuple[np.ndarray, np.ndarray]  # (N, bits / 8) packed codes, (N, bits) pre-activations (NaN for codes)
_GOLDEN = 0x9E3779B97F4A7C15  # multiplier of Fibonacci hashing: spreads consecutive ids


@dataclass(frozen=True)
class Hit:
    """One neighbour: its item id, Hamming distance to the query, and where its image is."""

    id: int
    distance: int
    root: str
    path: str
    label: str | None

    @property
    def file(self) -> Path:
        return Path(self.root) / self.path


class Hits(Sequence[Hit]):
    """One query's hits, nearest first, as columns over the searcher's :class:`ItemTable`.

    An id the table does not hold was deleted after the index was loaded; it is dropped.
    """

    def __init__(self, distances: np.ndarray, ids: np.ndarray, table: ItemTable) -> None:
        rows = table.rows(ids)
        held = rows >= 0
        self.distances, self.ids, self._rows, self._table = distances[held], ids[held], rows[held], table

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Hit:  # type: ignore[override]  # no slices
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        row, table = self._rows[i], self._table
        return Hit(int(self.ids[i]), int(self.distances[i]), table.roots[int(table.root_ids[row])],
                   table.paths[row], table.labels[row])

    def __iter__(self) -> Iterator[Hit]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hits) and list(self) == list(other)

    @property
    def paths(self) -> np.ndarray:
        """Each hit's path relative to its folder."""
        return self._table.paths[self._rows]

    @property
    def labels(self) -> np.ndarray:
        return self._table.labels[self._rows]


class InvalidQueryError(NacHashError, ValueError):
    """A query that cannot be searched as given: a code of the wrong form or length, or a k out of range."""


def parse_hex_code(text: str, bits: int) -> np.ndarray:
    """A code written as hex (most significant bit first, as :func:`code_to_hex` writes it) -> (1, bits/8) uint8."""
    text = text.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError as e:
        raise InvalidQueryError(f"code {text[:40]!r} is not hexadecimal") from e
    if len(raw) * 8 != bits:
        raise InvalidQueryError(f"code has {len(raw) * 8} bits; this index uses {bits}-bit codes "
                                f"({bits // 4} hex digits)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(1, -1).copy()


def code_to_hex(code: np.ndarray) -> str:
    return bytes(np.asarray(code, dtype=np.uint8)).hex()


class IndexUnusableError(NacHashError):
    """The index was rebuilt with a model this searcher cannot load: its queries would get the wrong codes."""


class Searcher:
    """Search one index directory.

    Args:
        store: the opened index directory.
        model: encodes query images (may be None for code-only search), with its weights' sha256.
        index: the FAISS index of the catalog's ``state``.
        state: the catalog state ``index`` was loaded at.
        ids: the item ids of that state, where already read (IndexStore.load_index); None reads them.
    """

    def __init__(self, store: IndexStore, model: tuple[HashingModel, str] | None, index: CodeIndex, state: str,
                 ids: np.ndarray | None = None) -> None:
        self.store = store
        self.model, self.model_sha256 = model or (None, None)
        self.copy_model = store.load_copy_model(next(self.model.parameters()).device) if self.model else None
        self._copy_index: tuple[str, HammingIndex] | None = None  # (state, index of the stored copy codes)
        self.table = ItemTable.empty().synced(store.catalog, ids)
        self.index = index
        self.state = state
        self.unusable: str | None = None  # why searches are refused, after a rebuild with another model
        self._retired: IndexStore | None = None  # the store a rebuild replaced, closed at the next one
        self._reload = threading.Lock()

    @classmethod
    def open(cls, index_dir: str | Path, checkpoint: str | Path | None = None, *, mmap: bool = False,
             params: SearchParams | None = None, threads: int | None = None,
             device: str | torch.device = "cpu", with_model: bool = True) -> Searcher:
        """Open ``index_dir`` for searching; ``mmap`` maps a flat index read-only instead of loading it."""
        set_threads(threads)
        store = IndexStore(index_dir)
        model = store.load_model(checkpoint, device) if with_model else None
        return cls(store, model, *store.load_index(mmap=mmap, params=params))

    @property
    def bits(self) -> int:
        return self.store.bits

    @property
    def dedup_distance(self) -> int:
        """The distance within which the index's model calls two images copies."""
        return self.store.dedup_distance

    @property
    def index_type(self) -> str:
        return self.store.meta["index_type"]

    def close(self) -> None:
        for store in (self.store, self._retired):
            if store is not None:
                store.close()

    def refresh(self) -> bool:
        """Reload the index if another writer committed a new state or built a new index; True when it did.

        A new build may have used another model: its recorded model is loaded in place of this one. Where it
        cannot be, searches are refused (:class:`IndexUnusableError`) until a build with a loadable model.
        """
        with self._reload:
            if self.store.replaced():
                store = IndexStore(self.store.dir)
                self._follow_model(store)
                # Searches still reading the old catalog finish on it; it is closed at the next rebuild.
                if self._retired is not None:
                    self._retired.close()
                self._retired, self.store = self.store, store
            elif self.store.catalog.refresh_meta()["state"] == self.state:
                return False
            self._serve(*self.store.load_index(params=self.index.params))
            return True

    def _follow_model(self, store: IndexStore) -> None:
        """Load the models ``store``'s index was built with (the copy model too), if they are not the ones loaded;
        else mark it unusable."""
        built_with = store.meta["checkpoint_sha256"]
        if self.model is None:
            self.unusable = None
            return
        device = next(self.model.parameters()).device
        try:
            if built_with != self.model_sha256:
                self.model, self.model_sha256 = store.load_model(device=device)
                logger.warning("%s was rebuilt with another model; now encoding queries with %s", store.dir,
                               store.meta["checkpoint_path"])
            self.copy_model = store.load_copy_model(device)
            self.unusable = None
        except (CheckpointMismatchError, CheckpointError) as e:
            self.unusable = f"the index was rebuilt with a model that cannot be loaded here: {e}"
            logger.error("%s", self.unusable)

    def check_usable(self) -> None:
        if self.unusable is not None:
            raise IndexUnusableError(self.unusable)

    def swap(self, index: CodeIndex, state: str) -> None:
        """Serve ``index`` (of catalog ``state``) from now on; searches already running finish on the old one."""
        with self._reload:
            self._serve(index, state)

    def _serve(self, index: CodeIndex, state: str, ids: np.ndarray | None = None) -> None:
        # The table first: a search reads the index, then the table, so it never meets a table older than its
        # index (whose new items it would drop); a newer table only drops the hits deleted since.
        self.table = self.table.synced(self.store.catalog, ids)
        self.index, self.state = index, state

    def decode(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
               max_decoded_bytes: int | None = None, copy: bool = False) -> np.ndarray:
        """Encoded image bytes -> the model's (``copy``: the copy model's) (S, S, 3) uint8 input (raises
        InvalidImageError)."""
        return decode_image(data, self.input_size(copy), max_pixels, max_bytes, max_decoded_bytes)

    def input_size(self, copy: bool = False) -> int:
        """The side in pixels of the model's (``copy``: the copy model's) input."""
        return ((copy and self.copy_model) or self._model()).config.image_size

    def encode(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 images -> (N, bits / 8) packed codes."""
        return pack_codes(self.embed(images))

    def query(self, images: Sequence[np.ndarray] | np.ndarray) -> Queries:
        """Decoded (N, S, S, 3) uint8 images -> what :meth:`search` takes: codes, and the pre-activations that
        order its ties."""
        logits = self.embed(images)
        return pack_codes(logits), logits

    def query_bytes(self, images: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> Queries:
        """Encoded images (the bytes of files) -> :meth:`query` of them, in one forward pass."""
        return self.query([self.decode(data, max_pixels, max_bytes) for data in images])

    def query_codes(self, codes: Sequence[str]) -> Queries:
        """Codes written as hex -> :meth:`search`'s input; a code carries no pre-activations (NaN rows)."""
        packed = np.concatenate([parse_hex_code(code, self.bits) for code in codes])
        return packed, np.full((len(codes), self.bits), np.nan, np.float32)

    def code_of(self, item_id: int) -> bytes | None:
        """The packed code stored for an item, None if there is none."""
        return self.store.catalog.code(item_id)

    def copy_code_of(self, item_id: int) -> bytes | None:
        """The code an item's copies are found by (its copy code, where the index keeps them)."""
        return self.store.catalog.code(item_id, copy=self.store.copies.stored)

    def copy_query(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Images decoded for the copy model (:meth:`decode` with ``copy``) -> the packed codes
        :meth:`duplicates` takes."""
        self.check_usable()
        model = self.copy_model or self._model()
        return pack_codes(code_logits(model, np.asarray(images, dtype=np.uint8)))

    def duplicates(self, codes: np.ndarray, radius: int) -> list[Hits]:
        """Every item whose copy code lies within ``radius`` of each query's (:meth:`copy_query`), nearest first."""
        self.check_usable()
        if not self.store.copies.stored:
            return self.radius_search(codes, radius)
        index, table = self._copies(), self.table
        return [Hits(*self._ordered(d, i, None), table) for d, i in index.range_search(codes, radius)]

    def _copies(self) -> HammingIndex:
        """The flat index of the stored copy codes, for the state the searcher serves."""
        state, cached = self.state, self._copy_index
        if cached is None or cached[0] != state:
            ids, codes = self.store.catalog.codes(copy=True)
            cached = state, HammingIndex.build(codes, ids, "flat", self.store.copies.bits)
            self._copy_index = cached
        return cached[1]

    def embed(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 images -> (N, bits) real-valued pre-activations; their signs are the codes."""
        self.check_usable()
        return code_logits(self._model(), np.asarray(images, dtype=np.uint8))

    def _model(self) -> HashingModel:
        if self.model is None:
            raise InvalidQueryError("this searcher was opened without a model; it can only search by code")
        return self.model

    def search(self, codes: np.ndarray, k: int = 10, max_distance: int | None = None,
               logits: np.ndarray | None = None) -> list[Hits]:
        """The ``k`` nearest items of each query code (nearest first), optionally only within ``max_distance``.

        ``logits``, the queries' pre-activations (:meth:`embed`; a row of NaN for a query given as a code),
        order hits at equal distance.
        """
        self.check_usable()
        index, table = self.index, self.table  # in this order: see _serve
        query_logits = _usable_logits(logits, len(codes))
        scored = np.array([q is not None for q in query_logits], dtype=bool)
        candidates = {}  # query -> (distances, ids)
        for rows, fetch in ((np.flatnonzero(scored), k * TIE_OVERFETCH), (np.flatnonzero(~scored), k)):
            if len(rows):
                candidates.update(zip(rows.tolist(), zip(*index.search(codes[rows], fetch), strict=True), strict=True))
        results = []
        for q, q_logits in enumerate(query_logits):
            d, i = self._ordered(*candidates[q], q_logits)
            keep = i[:k] >= 0
            if max_distance is not None:
                keep &= d[:k] <= max_distance
            results.append(Hits(d[:k][keep], i[:k][keep], table))
        return results

    def radius_search(self, codes: np.ndarray, radius: int, logits: np.ndarray | None = None) -> list[Hits]:
        """Every item within Hamming distance ``radius`` of each query code, nearest first."""
        self.check_usable()
        index, table = self.index, self.table
        return [Hits(*self._ordered(d, i, q_logits), table)
                for (d, i), q_logits in zip(index.range_search(codes, radius), _usable_logits(logits, len(codes)),
                                            strict=True)]

    def items(self, ids: Sequence[int]) -> dict[int, Item]:
        """id -> the full catalog record (size, time, digest too) of the ids that exist."""
        return self.store.catalog.items(ids)

    def _ordered(self, distances: np.ndarray, ids: np.ndarray,
                 logits: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Sort by distance, then by the second key of the module docstring."""
        if logits is None:
            second = (ids.astype(np.uint64) * np.uint64(_GOLDEN)).astype(np.float64)
        else:
            found = self.store.catalog.codes_of(ids[ids >= 0].tolist())
            width = self.bits // 8
            codes = np.frombuffer(b"".join(found.get(int(i), bytes(width)) for i in ids), np.uint8)
            second = -(unpack_bits(codes.reshape(-1, width)).astype(np.float32) * 2 - 1) @ logits
        order = np.lexsort((second, distances))
        return distances[order], ids[order]


def _usable_logits(logits: np.ndarray | None, queries: int) -> list[np.ndarray | None]:
    """Each query's pre-activations, or None for a query given as a code (no logits, or a row of NaN)."""
    if logits is None:
        return [None] * queries
    return [None if np.isnan(row).any() else row for row in logits]
