"""The folder, path and label of every item of an index, held in memory for search results.

At 1,000,000 items and k = 100, reading the hits' rows from SQLite cost more than the Hamming scan itself
(the git history of benchmarks/results/search-speed/). A :class:`ItemTable` holds one row per item, in id
order, so a search attaches metadata to its hits with one lookup per hit. It follows the catalog by dropping
the ids that are gone and reading only the rows that are new: an item's folder, path and label never change
under its id (re-indexing a changed file rewrites its size, time, digest and code), so the rows already held
stay true. About 100 bytes per item.
"""

from __future__ import annotations

import numpy as np

from nac_hash.index_data.catalog import Catalog


class ItemTable:
    """Columns in increasing id order; immutable, so a search never sees one half-updated."""

    def __init__(self, ids: np.ndarray, root_ids: np.ndarray, paths: np.ndarray, labels: np.ndarray,
                 roots: dict[int, str]) -> None:
        self.ids, self.root_ids, self.paths, self.labels, self.roots = ids, root_ids, paths, labels, roots
        # id -> row, one slot per id up to the largest: a hit's row is one read, where a binary search over a
        # million ids is twenty scattered ones. Ids are dense (SQLite hands them out in order; a build restarts them).
        self._row_of_id = np.full(int(ids[-1]) + 1 if len(ids) else 0, -1, dtype=np.int32)
        self._row_of_id[ids] = np.arange(len(ids), dtype=np.int32)

    @classmethod
    def empty(cls) -> ItemTable:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, object), np.empty(0, object), {})

    def synced(self, catalog: Catalog, current: np.ndarray | None = None) -> ItemTable:
        """A table of exactly the catalog's current items, reusing this one's rows; ``current`` gives those
        items' ids where the caller has just read them (IndexStore.load_index)."""
        if current is None:
            _, current = catalog.snapshot()
        kept = np.isin(self.ids, current, assume_unique=True)
        ids, root_ids, paths, labels = catalog.item_paths(current[~np.isin(current, self.ids, assume_unique=True)])
        ids = np.concatenate([self.ids[kept], ids])
        order = np.argsort(ids, kind="stable")
        return ItemTable(ids[order], np.concatenate([self.root_ids[kept], root_ids])[order],
                         np.concatenate([self.paths[kept], _objects(paths)])[order],
                         np.concatenate([self.labels[kept], _objects(labels)])[order],
                         catalog.root_paths())

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The row of each id, or -1 for an id the table does not hold."""
        rows = np.full(len(ids), -1, dtype=np.int64)
        known = (ids >= 0) & (ids < len(self._row_of_id))
        rows[known] = self._row_of_id[ids[known]]
        return rows


def _objects(values: list) -> np.ndarray:
    """A 1-D object array of ``values`` (np.array would make a string array, or a 2-D one of tuples)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
