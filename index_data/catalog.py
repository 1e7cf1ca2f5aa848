"""The catalog of an index: item metadata and packed codes in one SQLite database.

The catalog is the source of truth of an index directory. Each item has a stable integer id (SQLite's
AUTOINCREMENT never reuses one), the folder it was indexed from, its path relative to that folder, size,
mtime, SHA-256 of its bytes, a label (its class folder) when it has one, and its packed code, so any FAISS
index can be rebuilt without re-encoding. An item may also hold a second code, its copy code, from the model
that finds copies (see :class:`nac_hash.index_data.store.CopyCodes`): kept in the same row, it changes in the
same transaction as the item. The ``meta`` table records the format version, code length, checkpoint and index
type, and the ``state`` token of the FAISS file that matches the current rows. Every change happens inside one
transaction.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nac_hash.errors import NacHashError

CATALOG_FORMAT = 1

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE roots (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id INTEGER NOT NULL REFERENCES roots(id),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    label TEXT,
    code BLOB NOT NULL,
    copy_code BLOB,
    UNIQUE (root_id, path)
);
"""

ITEM_COLUMNS = "roots.path, items.path, items.size, items.mtime_ns, items.sha256, items.label, items.id"


class CatalogError(NacHashError):
    """A catalog is missing, of another format, or corrupt."""


class ItemNotFoundError(NacHashError, LookupError):
    """An item id or path that the index does not hold."""


@dataclass(frozen=True)
class ImageRecord:
    """What the catalog knows of an image file.

    Attributes:
        root: absolute folder the image was indexed from.
        path: path relative to ``root``.
        size: file size in bytes.
        mtime_ns: modification time when indexed.
        sha256: hex digest of the file's bytes.
        label: name of the folder holding the image, when it is not ``root`` itself.
    """

    root: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    label: str | None

    @property
    def file(self) -> Path:
        return Path(self.root) / self.path


@dataclass(frozen=True)
class Item(ImageRecord):
    """An indexed image and its stable id."""

    id: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NewItem(ImageRecord):
    """An encoded image file, ready to be stored: its code, and its copy code where the index keeps them."""

    code: bytes
    copy_code: bytes | None = None


class Catalog:
    """One catalog file, safe to share between threads.

    Writes go through one connection, inside :meth:`transaction`, one writer at a time; the writing thread also
    reads through it, so it sees its own uncommitted rows. Every other thread reads through a connection of its
    own, so a search never waits for a write in progress, only (briefly) for its commit.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CatalogError(f"no index catalog at {self.path}")
        self._lock = threading.RLock()
        self._writer: int | None = None  # the thread inside transaction()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.meta = self._read_meta()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise CatalogError(f"{self.path} is not an nac-hash catalog: {e}") from e
        if self.meta.get("format_version") != CATALOG_FORMAT:
            self._db.close()
            raise CatalogError(f"{self.path} has catalog format {self.meta.get('format_version')!r}; "
                               f"this nac-hash reads format {CATALOG_FORMAT}")
        # Catalogs written before copy codes lack their column: such an index finds copies by its own codes.
        self.has_copy_column = any(row[1] == "copy_code" for row in self._db.execute("PRAGMA table_info(items)"))

    @classmethod
    def create(cls, path: str | Path, meta: dict) -> Catalog:
        """Create a new catalog file at ``path`` (which must not exist) with ``meta``."""
        path = Path(path)
        if path.exists() and path.stat().st_size:
            raise CatalogError(f"{path} already exists")
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.executescript(f"BEGIN; {SCHEMA} COMMIT;")
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [(k, json.dumps(v)) for k, v in {**meta, "format_version": CATALOG_FORMAT}.items()])
        finally:
            db.close()
        return cls(path)

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection this thread reads through: the writer's own inside a transaction, else its reader."""
        if self._writer == threading.get_ident():
            with self._lock:
                yield self._db
            return
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            reader.execute("PRAGMA query_only = ON")
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        yield reader

    def _read_meta(self, db: sqlite3.Connection | None = None) -> dict:
        return {k: json.loads(v) for k, v in (db or self._db).execute("SELECT key, value FROM meta")}

    def refresh_meta(self) -> dict:
        """Re-read ``meta`` (another writer may have committed since)."""
        with self._reading() as db:
            self.meta = self._read_meta(db)
            return self.meta

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._writer = threading.get_ident()
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self.meta = self._read_meta()
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._writer = None

    def set_meta(self, **values: object) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in values.items()])
            self.meta.update(values)

    def count(self) -> int:
        with self._reading() as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def roots(self) -> list[str]:
        with self._reading() as db:
            return [r for (r,) in db.execute("SELECT path FROM roots ORDER BY id")]

    def _root_id(self, root: str) -> int:
        row = self._db.execute("SELECT id FROM roots WHERE path = ?", (root,)).fetchone()
        if row:
            return row[0]
        return self._db.execute("INSERT INTO roots (path) VALUES (?)", (root,)).lastrowid

    def known_files(self, root: str) -> dict[str, tuple[int, str]]:
        """path relative to ``root`` -> (id, sha256) of every item indexed from ``root``."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT items.path, items.id, items.sha256 FROM items JOIN roots ON roots.id = items.root_id "
                "WHERE roots.path = ?", (root,))
            return {path: (item_id, sha) for path, item_id, sha in rows}

    def _code_columns(self, item: NewItem) -> dict[str, bytes | None]:
        if item.copy_code is not None and not self.has_copy_column:
            raise CatalogError(f"{self.path} was written before copy codes; rebuild the index to keep them")
        return {"code": item.code, "copy_code": item.copy_code} if self.has_copy_column else {"code": item.code}

    def insert(self, items: Sequence[NewItem]) -> list[int]:
        """Store new items; returns their ids, which increase in the order given."""
        with self._lock:
            ids = []
            for item in items:
                codes = self._code_columns(item)
                cursor = self._db.execute(
                    f"INSERT INTO items (root_id, path, size, mtime_ns, sha256, label, {', '.join(codes)}) "
                    f"VALUES (?,?,?,?,?,?{',?' * len(codes)})",
                    (self._root_id(item.root), item.path, item.size, item.mtime_ns, item.sha256, item.label,
                     *codes.values()))
                ids.append(cursor.lastrowid)
            return ids

    def update(self, updates: Iterable[tuple[int, NewItem]]) -> None:
        """Replace the file details and codes of existing items, keeping their ids."""
        with self._lock:
            for item_id, i in updates:
                codes = self._code_columns(i)
                self._db.execute(
                    "UPDATE items SET size = ?, mtime_ns = ?, sha256 = ?, label = ?, "
                    f"{', '.join(f'{c} = ?' for c in codes)} WHERE id = ?",
                    (i.size, i.mtime_ns, i.sha256, i.label, *codes.values(), item_id))

    def delete(self, ids: Iterable[int]) -> int:
        """Delete items by id; returns how many existed."""
        with self._lock:
            cursor = self._db.executemany("DELETE FROM items WHERE id = ?", [(int(i),) for i in ids])
            return cursor.rowcount

    def ids_for_files(self, files: Iterable[Path]) -> dict[Path, int]:
        """Absolute file path -> item id, for the given files that are indexed."""
        roots = self.roots()
        with self._reading() as db:
            found = {}
            for file in files:
                for root in roots:
                    if file.is_relative_to(root):
                        row = db.execute(
                            "SELECT items.id FROM items JOIN roots ON roots.id = items.root_id "
                            "WHERE roots.path = ? AND items.path = ?", (root, str(file.relative_to(root)))).fetchone()
                        if row:
                            found[file] = row[0]
            return found

    def items(self, ids: Iterable[int]) -> dict[int, Item]:
        """id -> Item for the ids that exist."""
        ids = [int(i) for i in ids]
        with self._reading() as db:
            found = {}
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                rows = db.execute(
                    f"SELECT {ITEM_COLUMNS} FROM items JOIN roots ON roots.id = items.root_id "
                    f"WHERE items.id IN ({','.join('?' * len(chunk))})", chunk)
                found.update({row[-1]: Item(*row) for row in rows})
            return found

    def item_paths(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], list[str | None]]:
        """(ids, root ids, paths, labels) of those of ``ids`` that exist, in id order (root paths: ``root_paths``)."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        with self._reading() as db:
            if len(ids) > 10_000:  # one ordered scan beats a long list of IN queries
                rows = db.execute("SELECT id, root_id, path, label FROM items ORDER BY id").fetchall()
                rows = [row for row, wanted in zip(rows, np.isin([r[0] for r in rows], ids), strict=True) if wanted]
            else:
                rows = []
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500].tolist()
                    rows += db.execute(f"SELECT id, root_id, path, label FROM items WHERE id IN "
                                       f"({','.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall()
        found = np.array([r[0] for r in rows], dtype=np.int64)
        return found, np.array([r[1] for r in rows], dtype=np.int64), [r[2] for r in rows], [r[3] for r in rows]

    def root_paths(self) -> dict[int, str]:
        """Root id -> the absolute folder its items were indexed from."""
        with self._reading() as db:
            return dict(db.execute("SELECT id, path FROM roots"))

    def codes_of(self, ids: Iterable[int]) -> dict[int, bytes]:
        """id -> packed code for the ids that exist."""
        ids = [int(i) for i in ids]
        with self._reading() as db:
            found = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = db.execute(f"SELECT id, code FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                found.update(dict(rows))
            return found

    def code(self, item_id: int, copy: bool = False) -> bytes | None:
        """The packed code (``copy``: the copy code) of one item, or None when there is no such item."""
        with self._reading() as db:
            row = db.execute(f"SELECT {self._column(copy)} FROM items WHERE id = ?", (int(item_id),)).fetchone()
        return row[0] if row else None

    def _column(self, copy: bool) -> str:
        if copy and not self.has_copy_column:
            raise CatalogError(f"{self.path} holds no copy codes")
        return "copy_code" if copy else "code"

    def records(self) -> list[NewItem]:
        """Every item with its codes, in id order (to copy items into another catalog)."""
        copy_code = "items.copy_code" if self.has_copy_column else "NULL"
        with self._reading() as db:
            rows = db.execute(
                "SELECT roots.path, items.path, items.size, items.mtime_ns, items.sha256, items.label, items.code, "
                f"{copy_code} FROM items JOIN roots ON roots.id = items.root_id ORDER BY items.id").fetchall()
        return [NewItem(*row) for row in rows]

    def snapshot(self) -> tuple[dict, np.ndarray]:
        """(meta, all item ids in increasing order), read together in one transaction."""
        with self._reading() as db:
            nested = db.in_transaction
            if not nested:
                db.execute("BEGIN")
            try:
                self.meta = self._read_meta(db)
                rows = db.execute("SELECT id FROM items ORDER BY id").fetchall()
            finally:
                if not nested:
                    db.execute("COMMIT")
        return dict(self.meta), np.array([r[0] for r in rows], dtype=np.int64)

    def index_rows(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str | None]]:
        """(ids, codes, file paths, labels) of every item in id order: what an index is built from."""
        with self._reading() as db:
            rows = db.execute("SELECT items.id, items.code, roots.path, items.path, items.label FROM items "
                              "JOIN roots ON roots.id = items.root_id ORDER BY items.id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), self.meta["bits"] // 8)
        return ids, codes.copy(), [str(Path(r[2]) / r[3]) for r in rows], [r[4] for r in rows]

    def codes(self, copy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, packed codes) in increasing id order, the order of every FAISS index; ``copy``: the copy
        codes (of ``meta["copy_model"]["bits"]``).

        Raises:
            CatalogError: ``copy``, and an item has no copy code.
        """
        with self._reading() as db:
            rows = db.execute(f"SELECT id, {self._column(copy)} FROM items ORDER BY id").fetchall()
        if any(r[1] is None for r in rows):
            raise CatalogError(f"{self.path}: an item has no copy code; rebuild the index")
        width = (self.meta["copy_model"]["bits"] if copy else self.meta["bits"]) // 8
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), width)
        return ids, codes.copy()
