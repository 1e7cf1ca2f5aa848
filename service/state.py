"""What the service holds while it runs: the searcher, and the one writer that changes the index.

A write builds the next FAISS index as a copy, commits it exactly as the indexer does (same catalog, same files,
same crash safety), then swaps the searcher's reference to it, so a search sees the index before the write or
after it, never half of it. Searches only wait for the catalog while a write's transaction is open (one
SQLite connection is shared), never for the encoding of an upload.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nac_hash.atomic import atomic_path
from nac_hash.errors import NacHashError
from nac_hash.images import IMAGE_EXTENSIONS, InvalidImageError
from nac_hash.index_data.catalog import Item, ItemNotFoundError
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import add_files, remove_items
from nac_hash.index_data.search import Searcher
from nac_hash.index_data.store import IndexStore, write_lock
from nac_hash.service.settings import Settings

logger = logging.getLogger(__name__)


class ReadOnlyIndexError(NacHashError):
    """The index is served memory-mapped, so it cannot change."""


class SearchService:
    """The opened index and model, plus adds and deletes that keep the index directory consistent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.searcher = Searcher.open(settings.index, settings.checkpoint, mmap=settings.mmap,
                                      params=settings.search, threads=settings.threads)
        self._writer = threading.Lock()
        self._options = IndexOptions(progress=False, max_pixels=settings.max_pixels,
                                     max_bytes=settings.max_upload_bytes)

    def close(self) -> None:
        self.searcher.store.close()

    def decode(self, data: bytes) -> np.ndarray:
        return self.searcher.decode(data, self.settings.max_pixels, self.settings.max_upload_bytes)

    def _check_writable(self) -> None:
        if self.settings.mmap:
            raise ReadOnlyIndexError("the index is served memory-mapped (read-only); serve it unmapped to change it")

    @contextmanager
    def _writing(self) -> Iterator[IndexStore]:
        """Be the one writer of the index directory, caught up with whatever other writers committed."""
        with self._writer, write_lock(self.settings.index):
            self.searcher.refresh()
            yield self.searcher.store

    def add_image(self, data: bytes, filename: str) -> Item:
        """Store an uploaded image in the index's uploads folder and index it; the same bytes twice give one item."""
        self._check_writable()
        self.decode(data)  # reject bad uploads before touching anything
        suffix = Path(filename).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            raise InvalidImageError(f"unsupported file name extension {suffix!r}; use one of "
                                    f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
        uploads = self.settings.uploads.resolve()
        path = uploads / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
        with self._writing() as store:
            if not path.exists():
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
            report, index = add_files(store, self.searcher.model, [(uploads, path)], self._options,
                                      self.searcher.index)
            self.searcher.swap(index, store.state)
        if report.skipped:
            raise InvalidImageError(report.skipped[0][1])
        return self.searcher.items(self.searcher.store.catalog.ids_for_files([path]).values()).popitem()[1]

    def delete(self, item_id: int) -> Item:
        """Remove an item; an uploaded image's file goes with it."""
        self._check_writable()
        with self._writing() as store:
            item = self.searcher.items([item_id]).get(item_id)
            if item is None:
                raise ItemNotFoundError(f"no item with id {item_id}")
            _, index = remove_items(store, ids=[item_id])
            self.searcher.swap(index, store.state)
        if item.file.parent == self.settings.uploads.resolve():
            item.file.unlink(missing_ok=True)
        return item
