"""An index directory on disk, and how it changes without ever being half-written.

Layout::

    INDEX_DIR/catalog.sqlite         items, packed codes and meta (format, bits, checkpoint, index type, state)
    INDEX_DIR/<engine>-<state>.index the index of the catalog's current ``state``, named by its engine (the
                                     catalog's ``backend``): faiss-<state>.index holds the codes,
                                     milvus-<state>.index points to a Milvus collection
    INDEX_DIR/report.json            files skipped by the last build or add, with the reason
    INDEX_DIR/write.lock             taken by every writer (one at a time)

A change writes a state file under a fresh state token, then commits the catalog rows together with the
new token in one SQLite transaction, then deletes FAISS files of older states. Killed before the commit,
the old state and its file are untouched; killed after it, the new state's file is already on disk.
A fresh build writes a whole new catalog beside the old one and renames it over the old one.

Every change, by the command line or the service, goes through this module: :func:`index_writer` (or
``IndexStore.writer``) takes the lock, stages rows and codes in an :class:`IndexWriter`, and commits them;
:func:`write_index` makes a fresh build. No other module takes the lock.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from nac_hash.atomic import fsync_file
from nac_hash.checkpoint import (
    PACKAGED_MODELS,
    CheckpointError,
    load_checkpoint,
    packaged_checkpoint,
    read_sidecar,
)
from nac_hash.errors import NacHashError
from nac_hash.index_data import config
from nac_hash.index_data.backends import (
    CodeIndex,
    backend_for_type,
    build_index,
    check_index_type,
    load_index_file,
    state_file,
    state_files,
)
from nac_hash.index_data.catalog import Catalog, CatalogError, NewItem
from nac_hash.index_data.lock import write_lock
from nac_hash.index_data.search_params import SearchParams
from nac_hash.models import HashingModel

logger = logging.getLogger(__name__)

CATALOG_NAME = "catalog.sqlite"
REPORT_NAME = "report.json"


class IndexDirError(NacHashError):
    """A directory is not a usable nac-hash index."""


class CheckpointMismatchError(ValueError):
    """The checkpoint given does not produce the codes stored in the index."""


@dataclass(frozen=True)
class CopyCodes:
    """The codes an index finds copies by (nac-hash dedup, the service's duplicates routes).

    A retrieval model ranks similar images; a copy model (one that records its dedup distance, such as the
    packaged ``copies``) finds edited copies of one image far better. An index built with a retrieval model
    therefore keeps, in each catalog row, the copy model's code too (``stored``), and finds copies by those;
    an index built with a copy model, or without copy codes (``index build --no-copy-codes``, or an index
    written before them), finds copies by its own codes.

    Attributes:
        stored: the codes are the catalog's copy codes, not the index's own.
        bits: their length.
        distance: the Hamming distance within which their model calls two images copies.
        checkpoint_sha256: their model's weights.
        checkpoint_path: where their model was when the index was built.
    """

    stored: bool
    bits: int
    distance: int
    checkpoint_sha256: str
    checkpoint_path: str

    @classmethod
    def of(cls, meta: dict) -> CopyCodes:
        """What an index's meta records: its ``copy_model`` (written by :func:`copy_model_record`), else its own
        model's codes."""
        if "copy_model" in meta:
            return cls(stored=True, **meta["copy_model"])
        return cls(False, meta["bits"], config.dedup_distance(meta), meta["checkpoint_sha256"],
                   meta["checkpoint_path"])


def copy_model_record(model: HashingModel, sidecar: dict, path: Path) -> dict:
    """The ``copy_model`` entry of an index's meta for copy codes made by ``model`` (see CopyCodes)."""
    return {"bits": model.config.code_bits, "distance": config.dedup_distance(sidecar),
            "checkpoint_sha256": sidecar["weights_sha256"], "checkpoint_path": str(path.resolve())}


def backend_of(meta: dict) -> str:
    """The engine the catalog records (derived from the index type in catalogs written before it was)."""
    return meta.get("backend") or backend_for_type(meta["index_type"]).name


def state_path(index_dir: Path, meta: dict) -> Path:
    """The file of the catalog's current state, named by its engine. An index written before files were named
    by engine has it as ``faiss-<state>.index``, whatever its engine."""
    named = state_file(index_dir, meta["state"], backend_of(meta))
    legacy = state_file(index_dir, meta["state"], "faiss")
    return legacy if not named.exists() and legacy.exists() else named


def new_state() -> str:
    return uuid.uuid4().hex


def recover_catalog(path: Path) -> None:
    """Let SQLite roll back a transaction that a killed writer left in ``path``'s journal."""
    if path.is_file():
        db = sqlite3.connect(path)
        try:
            db.execute("SELECT COUNT(*) FROM meta").fetchone()
        finally:
            db.close()


def remove_stale_files(index_dir: Path, meta: dict) -> None:
    """Delete the state files of states other than ``meta``'s (and what only they point to, such as a Milvus
    collection) and catalogs of builds that never finished. Hold the write lock."""
    current = state_path(index_dir, meta)
    for path, backend in list(state_files(index_dir)):
        if path != current:
            backend.discard_file(path, current)
            path.unlink(missing_ok=True)
    for path in index_dir.glob(".catalog-*.tmp*"):
        path.unlink(missing_ok=True)


class IndexStore:
    """An opened index directory: its catalog and the FAISS index of its current state."""

    def __init__(self, index_dir: str | Path) -> None:
        self.dir = Path(index_dir)
        catalog_path = self.dir / CATALOG_NAME
        if not catalog_path.is_file():
            raise IndexDirError(f"{self.dir} is not an nac-hash index: {CATALOG_NAME} not found "
                                "(create one with `nac-hash index build`)")
        try:
            self._inode = catalog_path.stat().st_ino
            self.catalog = Catalog(catalog_path)
        except CatalogError as e:
            raise IndexDirError(str(e)) from e

    def close(self) -> None:
        self.catalog.close()

    def replaced(self) -> bool:
        """Whether a build has renamed a new catalog over the one this store has open."""
        try:
            return (self.dir / CATALOG_NAME).stat().st_ino != self._inode
        except FileNotFoundError:
            return False

    @property
    def meta(self) -> dict:
        return self.catalog.meta

    @property
    def bits(self) -> int:
        return self.meta["bits"]

    @property
    def copies(self) -> CopyCodes:
        """The codes this index finds copies by."""
        return CopyCodes.of(self.meta)

    @property
    def dedup_distance(self) -> int:
        """The distance within which the model of this index's copy codes calls two images copies."""
        return self.copies.distance

    @property
    def state(self) -> str:
        return self.meta["state"]

    def check_checkpoint(self, sha256: str, name: str) -> None:
        """Raise :class:`CheckpointMismatchError` unless ``sha256`` is the checkpoint the index was built with."""
        if sha256 != self.meta["checkpoint_sha256"]:
            raise CheckpointMismatchError(
                f"{self.dir} was built with checkpoint {self.meta['checkpoint_path']} (weights sha256 "
                f"{self.meta['checkpoint_sha256'][:12]}...), not {name} (sha256 {sha256[:12]}...): its codes "
                "would not be comparable. Pass the index's checkpoint, or rebuild the index with this one.")

    def load_model(self, checkpoint: str | Path | None = None,
                   device: str | torch.device = "cpu") -> tuple[HashingModel, str]:
        """The model that encodes queries for this index, with its weights' sha256: ``checkpoint`` if given,
        else the one it was built with.

        Raises:
            CheckpointMismatchError: the checkpoint's weights differ from the index's.
        """
        if checkpoint is not None:
            sha256 = read_sidecar(checkpoint)["weights_sha256"]
            self.check_checkpoint(sha256, str(checkpoint))
            return load_checkpoint(checkpoint, device)[0], sha256
        model = _find_model(self.meta["checkpoint_sha256"], self.meta["checkpoint_path"], device,
                            f"the checkpoint {self.dir} was built with", "pass it with --checkpoint")
        return model, self.meta["checkpoint_sha256"]

    def load_copy_model(self, device: str | torch.device = "cpu") -> HashingModel | None:
        """The model of this index's copy codes, or None where it finds copies by its own codes (see CopyCodes).

        Raises:
            CheckpointMismatchError: that model is neither where it was nor a packaged model.
        """
        copies = self.copies
        if not copies.stored:
            return None
        return _find_model(copies.checkpoint_sha256, copies.checkpoint_path, device,
                           f"the copy model of {self.dir}", "put it back, or rebuild the index")

    def load_index(self, mmap: bool = False,
                   params: SearchParams | None = None) -> tuple[CodeIndex, str, np.ndarray | None]:
        """(index, state, ids) of the catalog's current state; rebuilt from the stored codes if its file is gone
        or does not match the catalog. ``ids`` are the index's item ids as read with the state, so a caller can
        follow them without reading them again; None where the index was rebuilt or refilled."""
        if mmap and self.meta["index_type"] != "flat":
            raise ValueError(f"only flat indexes can be memory-mapped; {self.dir} is {self.meta['index_type']!r}")
        meta, ids = self.catalog.snapshot()
        path = state_path(self.dir, meta)
        try:
            index = load_index_file(path, backend_of(meta), ids, mmap=mmap, params=params)
        except (OSError, ValueError) as e:
            logger.warning("%s; rebuilding the %s index from the stored codes", e, meta["index_type"])
            return self.index_from_catalog(params=params), meta["state"], None
        if not index.in_step(len(ids)):
            return self._refill(index), meta["state"], None
        return index, meta["state"], ids

    def _refill(self, index: CodeIndex) -> CodeIndex:
        """Refill an engine that fell out of step with the catalog (a Milvus collection whose writer died before
        its commit), in place, so that the state file keeps pointing at it. Only done when no writer holds the
        directory: a writer's rows reach such an engine just before its commit."""
        with try_exclusive(self.dir) as locked:
            if not locked:
                logger.warning("%s is out of step with the catalog; a writer is busy, so it is left for the next "
                               "opener to refill", index)
                return index
            logger.warning("%s is out of step with the catalog; refilling it", index)
            ids, codes, paths, labels = self.catalog.index_rows()
            return index.refilled(codes, ids, self.meta["index_type"], paths, labels)

    def index_from_catalog(self, index_type: str | None = None,
                           params: SearchParams | None = None) -> CodeIndex:
        """A new index of ``index_type`` (default: the index's own) over every item the catalog holds."""
        ids, codes, paths, labels = self.catalog.index_rows()
        return build_index(codes, ids, index_type or self.meta["index_type"], self.bits, params, paths, labels)

    def writer(self, model_sha256: str | None = None, timeout_s: float | None = None) -> AbstractContextManager:
        """``with store.writer() as w: w.add(...); w.remove(...)``: the directory's one writer, committed at the
        end of the block (see :func:`index_writer`).

        Raises:
            IndexDirError: a build replaced the index while this writer waited (its catalog is another now).
            CheckpointMismatchError: ``model_sha256``, the weights of the codes to be written, is not the model
                the index was built with.
        """
        def current() -> tuple[IndexStore, CodeIndex]:
            if self.replaced():
                raise IndexDirError(f"{self.dir} was rebuilt while this command waited to write; run it again")
            self.catalog.refresh_meta()
            if model_sha256 is not None:
                self.check_checkpoint(model_sha256, "the model these codes come from")
            return self, self.load_index()[0]

        return index_writer(self.dir, current, timeout_s)


def _find_model(sha256: str, path: str, device: str | torch.device, what: str, fix: str) -> HashingModel:
    """The model whose weights have ``sha256``: the file at ``path`` or a packaged model."""
    for candidate in (Path(path), *map(packaged_checkpoint, PACKAGED_MODELS)):
        try:
            if read_sidecar(candidate)["weights_sha256"] == sha256:
                return load_checkpoint(candidate, device)[0]
        except CheckpointError:
            continue
    raise CheckpointMismatchError(f"{what} ({path}) is not there any more; {fix}")


class IndexWriter:
    """Changes to one index directory, staged under its write lock and committed together: the catalog's rows
    and the index of the new state in one SQLite transaction (see the module docstring).

    The index it starts from (the current state's) is never modified, so searches may go on using it; after
    :meth:`commit`, ``index`` and ``state`` are the new state's.
    """

    def __init__(self, store: IndexStore, index: CodeIndex) -> None:
        self.store, self.index, self.state = store, index, store.state
        self.added_ids: list[int] = []
        self.removed = 0
        self._new: list[NewItem] = []
        self._changed: list[tuple[int, NewItem]] = []
        self._removed: set[int] = set()
        self._index_type: str | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog, for reads (what a writer must know before it stages a change)."""
        return self.store.catalog

    def add(self, items: Sequence[NewItem]) -> None:
        self._check_copy_codes(items)
        self._new += items

    def update(self, changed: Sequence[tuple[int, NewItem]]) -> None:
        """Replace the rows of these ids (files whose content changed)."""
        self._check_copy_codes([item for _, item in changed])
        self._changed += changed

    def _check_copy_codes(self, items: Sequence[NewItem]) -> None:
        """Items carry copy codes exactly where the index keeps them, so that every row can find copies."""
        stored = self.store.copies.stored
        if any((item.copy_code is not None) != stored for item in items):
            raise ValueError(f"{self.store.dir} {'keeps' if stored else 'keeps no'} copy codes; these items "
                             f"{'lack them' if stored else 'carry them'}")

    def remove(self, ids: Iterable[int]) -> None:
        self._removed |= {int(i) for i in ids}

    def reindex(self, index_type: str) -> None:
        """Rebuild the index from the stored codes, as ``index_type``, at the commit."""
        check_index_type(index_type, self.store.bits)
        self._index_type = index_type

    def commit(self) -> CodeIndex:
        """Write what was staged (nothing staged: only stale files are removed); returns the new state's index.

        The block of :func:`index_writer` commits at its end; a writer commits sooner where it must act on the
        committed state while it still holds the lock."""
        if not (self._new or self._changed or self._removed or self._index_type):
            remove_stale_files(self.store.dir, self.store.meta)  # what a killed writer may have left
            return self.index
        catalog = self.store.catalog
        with catalog.transaction():
            self.added_ids = catalog.insert(self._new)
            catalog.update(self._changed)
            self.removed = catalog.delete(self._removed) if self._removed else 0
            self.index = self._next_index()
            self.state = new_state()
            index_type = self._index_type or self.store.meta["index_type"]
            backend = backend_for_type(index_type).name
            self.index.save(state_file(self.store.dir, self.state, backend))
            catalog.set_meta(state=self.state, index_type=index_type, backend=backend)
        # Re-read what was committed: a reader thread may have refreshed the shared meta in the meantime.
        remove_stale_files(self.store.dir, catalog.refresh_meta())
        self._new, self._changed, self._removed, self._index_type = [], [], set(), None
        return self.index

    def _next_index(self) -> CodeIndex:
        """The new codes appended to a copy of the index, or a rebuild from all stored codes where rows changed
        or left (or another index type was asked for)."""
        if self._changed or self._removed or self._index_type or not self.index.can_add:
            return self.store.index_from_catalog(self._index_type)
        bits = self.store.bits
        index = self.index.copy()
        codes = np.frombuffer(b"".join(i.code for i in self._new), np.uint8).reshape(len(self._new), bits // 8)
        index.add(codes, np.array(self.added_ids, dtype=np.int64), [str(Path(i.root) / i.path) for i in self._new],
                  [i.label for i in self._new])
        return index


class IndexBusyError(NacHashError):
    """Another writer held the index for longer than this one could wait."""


@contextmanager
def index_writer(index_dir: Path, current: Callable[[], tuple[IndexStore, CodeIndex]],
                 timeout_s: float | None = None) -> Iterator[IndexWriter]:
    """Hold ``index_dir``'s write lock (at most ``timeout_s`` of waiting for it), yield a writer over what
    ``current()``, called once the lock is held, says is the store and its current index, and commit when the
    block ends without an error. Every change of an index directory, by the command line or the service, is
    made here.

    Raises:
        IndexBusyError: the lock was not free within ``timeout_s``.
    """
    started = time.monotonic()
    with write_lock(index_dir, timeout_s=timeout_s) as held:
        if not held:
            raise IndexBusyError(f"waited {time.monotonic() - started:.1f} s for another process (the command "
                                 "line?) to finish writing the index; try again shortly")
        writer = IndexWriter(*current())
        yield writer
        writer.commit()


def try_exclusive(index_dir: Path) -> AbstractContextManager[bool]:
    """The write lock if it is free now (yields True), else nothing (False): for tidying up that can wait."""
    return write_lock(index_dir, wait=False)


def write_index(out: Path, meta: dict, fill: Callable[[Catalog], list[NewItem]]) -> int:
    """Write a complete new index at ``out`` and swap it in at the end; returns how many items it holds.

    ``fill`` receives the new, empty catalog (to look up what it already holds) and returns its items. The old
    index stays untouched, and loadable, until the final rename.
    """
    with write_lock(out):
        tmp = out / f".catalog-{new_state()}.tmp"
        try:
            meta = {**meta, "backend": backend_for_type(meta["index_type"]).name}
            catalog = Catalog.create(tmp, {**meta, "state": "", "created": datetime.now(UTC).isoformat()})
            items = fill(catalog)
            with catalog.transaction():
                ids = catalog.insert(items)
                codes = np.frombuffer(b"".join(i.code for i in items), np.uint8).reshape(len(items), meta["bits"] // 8)
                state = new_state()
                build_index(codes, np.array(ids, np.int64), meta["index_type"], meta["bits"],
                            paths=[str(Path(i.root) / i.path) for i in items],
                            labels=[i.label for i in items]).save(state_file(out, state, meta["backend"]))
                catalog.set_meta(state=state)
            catalog.close()
            fsync_file(tmp)
            recover_catalog(out / CATALOG_NAME)  # an old hot journal must not be applied to the new file
            os.replace(tmp, out / CATALOG_NAME)
        finally:
            tmp.unlink(missing_ok=True)
        remove_stale_files(out, {**meta, "state": state})
    return len(items)
