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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nac_hash.atomic import atomic_path
from nac_hash.codes import pack_codes
from nac_hash.errors import NacHashError
from nac_hash.images import image_extension
from nac_hash.index_data.backends import CodeIndex
from nac_hash.index_data.catalog import Item, ItemNotFoundError, NewItem
from nac_hash.index_data.search import Hit, Hits, InvalidQueryError, Queries, Searcher
from nac_hash.index_data.store import IndexBusyError, IndexStore, IndexWriter, index_writer
from nac_hash.service.batcher import QueryBatcher
from nac_hash.service.metrics import Stages
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
        self._waiting = threading.BoundedSemaphore(settings.max_waiting_writes)
        self._decoding = threading.BoundedSemaphore(settings.decode_slots)
        self._checked = time.monotonic()
        self._batcher = (QueryBatcher(lambda images: self.searcher.embed(images), settings.max_query_batch)
                         if settings.batch_queries else None)
        if not settings.mmap:
            self.remove_orphan_uploads()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        self.searcher.close()

    def refresh_due(self) -> bool:
        """Whether refresh_s has passed since the last check for changes other processes (the CLI) committed;
        True starts a new period, so one request of each does the check."""
        now = time.monotonic()
        if now - self._checked < self.settings.refresh_s:
            return False
        self._checked = now
        return True

    def refresh(self) -> None:
        """Catch the searcher up with what other processes committed (a catalog read; a reload when it changed)."""
        self.searcher.refresh()

    def decode(self, data: bytes, copy: bool = False) -> np.ndarray:
        """Image bytes -> the model's (``copy``: the copy model's) input; at most ``decode_slots`` at once, so that
        the memory of decoding is bounded by the slots times ``max_decoded_bytes``, however many requests arrive
        together."""
        with self._decoding:
            return self.searcher.decode(data, self.settings.max_pixels, self.settings.max_upload_bytes,
                                        self.settings.max_decoded_bytes, copy)

    def _check_writable(self) -> None:
        if self.settings.mmap:
            raise ReadOnlyIndexError("the index is served memory-mapped (read-only); serve it unmapped to change it")

    def _acquire_writer(self, started: float) -> None:
        """This process's writer slot, waited for at most writer_wait_s by at most max_waiting_writes requests."""
        if not self._waiting.acquire(blocking=False):
            raise IndexBusyError(f"{self.settings.max_waiting_writes} writes are already waiting for the index; "
                                 "try again shortly")
        try:
            if not self._writer.acquire(timeout=self.settings.writer_wait_s):
                raise IndexBusyError(f"waited {time.monotonic() - started:.1f} s for another write of this service "
                                     "to finish; try again shortly")
        finally:
            self._waiting.release()

    @contextmanager
    def _writing(self) -> Iterator[IndexWriter]:
        """Be the one writer of the index directory, caught up with whatever other writers committed; the
        searcher serves each state it commits."""
        started = time.monotonic()
        self._acquire_writer(started)
        try:
            remaining = max(0.0, started + self.settings.writer_wait_s - time.monotonic())
            with index_writer(self.settings.index, self._caught_up, remaining) as writer:
                yield writer
                self._commit(writer)
        finally:
            self._writer.release()

    def _caught_up(self) -> tuple[IndexStore, CodeIndex]:
        self.searcher.refresh()
        return self.searcher.store, self.searcher.index

    def _commit(self, writer: IndexWriter) -> None:
        """Commit what ``writer`` staged and serve the new state (searches already running finish on the old)."""
        self.searcher.swap(writer.commit(), writer.state)

    def remove_orphan_uploads(self) -> None:
        """Delete upload files no item refers to (left by a crash between writing a file and its commit)."""
        uploads = self.settings.uploads.resolve()
        if not uploads.is_dir():
            return
        try:
            with index_writer(self.settings.index, self._caught_up, timeout_s=0) as writer:
                files = [p for p in uploads.iterdir() if p.is_file()]
                known = writer.catalog.ids_for_files(files)
                for orphan in set(files) - set(known):
                    logger.info("removing orphan upload %s", orphan.name)
                    orphan.unlink(missing_ok=True)
        except IndexBusyError:
            return  # another writer is busy; the next start tidies up

    @property
    def bits(self) -> int:
        return self.searcher.bits

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """One decoded image -> its (1, bits) pre-activations; their signs are its code."""
        if self._batcher is not None:
            return self._batcher.embed(pixels)
        return self.searcher.embed([pixels])

    def query(self, data: bytes, stages: Stages | None = None) -> Queries:
        """One uploaded image -> (codes, pre-activations) for :meth:`search`: decoded within the decode slots,
        encoded with the queries of concurrent requests; each stage timed into ``stages`` if given."""
        stages = stages or Stages()
        with stages.stage("decode"):
            pixels = self.decode(data)
        with stages.stage("encode"):
            logits = self.embed(pixels)
        return pack_codes(logits), logits

    def search(self, codes: np.ndarray, logits: np.ndarray, k: int, max_distance: int | None) -> list[Hits]:
        """Top-k of each query; ``logits`` (a row of NaN for a code query) order ties (see Searcher.search)."""
        if k > self.settings.max_k:
            raise InvalidQueryError(f"k must be at most {self.settings.max_k}")
        return self.searcher.search(codes, k, max_distance, logits)

    @property
    def copy_bits(self) -> int:
        """The length of the codes copies are found by (IndexStore.copies)."""
        return self.searcher.store.copies.bits

    def duplicate_distance(self, max_distance: int | None) -> int:
        """``max_distance``, checked against a quarter of the copy codes' bits, or, for None, the distance their
        model records for copies (IndexStore.dedup_distance)."""
        if max_distance is None:
            return self.searcher.dedup_distance
        if max_distance > self.copy_bits // 4:
            raise InvalidQueryError(f"max_distance must be at most {self.copy_bits // 4} for the index's "
                                    f"{self.copy_bits}-bit copy codes")
        return max_distance

    def copy_query(self, data: bytes) -> np.ndarray:
        """One uploaded image -> its (1, copy bits / 8) packed copy code."""
        return self.searcher.copy_query([self.decode(data, copy=True)])

    def duplicates(self, code: np.ndarray, max_distance: int, exclude: int | None = None) -> list[Hit]:
        """Items whose copy codes lie within ``max_distance`` of one query's, nearest first, without the item
        ``exclude``."""
        hits = self.searcher.duplicates(code, max_distance)[0]
        return [h for h in hits if h.id != exclude]

    def item_duplicates(self, item_id: int, max_distance: int) -> list[Hit]:
        """Other items within ``max_distance`` of an item, by their copy codes."""
        code = self.searcher.copy_code_of(item_id)
        if code is None:
            raise ItemNotFoundError(f"no item with id {item_id}")
        return self.duplicates(np.frombuffer(code, np.uint8).reshape(1, -1), max_distance, exclude=item_id)

    def item(self, item_id: int) -> tuple[Item, bytes]:
        """An item and its packed code."""
        item = self.searcher.items([item_id]).get(item_id)
        code = self.searcher.code_of(item_id)
        if item is None or code is None:
            raise ItemNotFoundError(f"no item with id {item_id}")
        return item, code

    def item_file(self, item_id: int) -> Path:
        """An item's image file, only from inside the folder it was indexed from."""
        item, _ = self.item(item_id)
        file = item.file.resolve()
        if not file.is_relative_to(Path(item.root).resolve()) or not file.is_file():
            raise ItemNotFoundError(f"the image file of item {item_id} is not available")
        return file

    def status(self) -> dict:
        """Items, bits and index type; raises IndexUnusableError while the index's model cannot be loaded."""
        self.searcher.check_usable()
        return {"items": self.searcher.index.ntotal, "bits": self.bits,
                "index_type": self.searcher.index_type}

    def add_image(self, data: bytes) -> Item:
        """Store an uploaded image in the index's uploads folder and index it; the same bytes give one item.

        The image is decoded and encoded once, here. The file is named by the SHA-256 of its bytes and the
        extension of its decoded format, and is written and committed under the writer lock, so an acknowledged
        item always has its file.
        """
        self._check_writable()
        encoded_with = self.searcher.model_sha256
        code, copy_code = self._codes(data)
        digest = hashlib.sha256(data).hexdigest()
        uploads = self.settings.uploads.resolve()
        path = uploads / f"{digest[:24]}{image_extension(data)}"
        with self._writing() as writer:
            if self.searcher.model_sha256 != encoded_with:  # a rebuild with another model, caught up with above
                code, copy_code = self._codes(data)
            writer.store.check_checkpoint(self.searcher.model_sha256, "the service's model")
            known = writer.catalog.ids_for_files([path])
            if path not in known:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
                writer.add([NewItem(str(uploads), path.name, len(data), path.stat().st_mtime_ns, digest, None,
                                    code, copy_code)])
                self._commit(writer)
                known = {path: writer.added_ids[0]}
        return self.searcher.items([known[path]])[known[path]]

    def _codes(self, data: bytes) -> tuple[bytes, bytes | None]:
        """An image's packed code, and its copy code where the index keeps them (decoded once where both models
        take the same size)."""
        pixels = self.decode(data)
        code = pack_codes(self.embed(pixels))[0].tobytes()
        if not self.searcher.store.copies.stored:
            return code, None
        if self.searcher.input_size(copy=True) != len(pixels):
            pixels = self.decode(data, copy=True)
        return code, self.searcher.copy_query([pixels])[0].tobytes()

    def delete(self, item_id: int) -> Item:
        """Remove an item; an uploaded image's file goes with it, under the same lock."""
        self._check_writable()
        with self._writing() as writer:
            item = self.searcher.items([item_id]).get(item_id)
            if item is None:
                raise ItemNotFoundError(f"no item with id {item_id}")
            writer.remove([item_id])
            self._commit(writer)  # before the file goes, and while no upload of the same bytes can write it
            if item.file.parent == self.settings.uploads.resolve():
                item.file.unlink(missing_ok=True)
        return item
