"""The Python API's index: build, open, search, change and deduplicate an index directory in a few lines.

>>> import nac_hash
>>> index = nac_hash.build_index([photos], index_dir)          # doctest: +SKIP
>>> index = nac_hash.open_index(index_dir)
>>> len(index)
13
>>> hits = index.search(photos / "cats" / "0.png", k=3)[0]      # one list of hits per query
>>> hits[0].path, hits[0].distance                            # an indexed image finds itself first
('cats/0.png', 0)
>>> [len(group) for group in index.duplicates(max_distance=0)]  # the folder holds one exact copy
[2]
>>> sorted(hit.path for hit in index.copies_of(photos / "cats" / "0.png")[0])  # the indexed copies of an image
['cats/0.png', 'class1/copy.png']

It wraps the same code as the ``nac-hash index``, ``search`` and ``dedup`` commands: an index written here is
the command line's and the service's, and every write takes the directory's write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nac_hash.api import ImageLike, Model
from nac_hash.codes import pack_bits
from nac_hash.index_data import indexer
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.dedup import Member, duplicates_of
from nac_hash.index_data.search import Hits, Searcher


class Index:
    """An opened index directory (:func:`open_index`, :func:`build_index`)."""

    def __init__(self, searcher: Searcher) -> None:
        self._searcher = searcher
        self.model = Model(searcher.model)
        self.dir = searcher.store.dir

    def __len__(self) -> int:
        self._searcher.refresh()
        return self._searcher.index.ntotal

    def __repr__(self) -> str:
        return f"Index({str(self.dir)!r}, {len(self)} items, {self._searcher.bits} bits)"

    def search(self, images: ImageLike | Sequence[ImageLike], k: int = 10,
               max_distance: int | None = None) -> list[Hits]:
        """The ``k`` nearest items of each image (one :class:`Hits` list per image, nearest first)."""
        codes, logits = self._searcher.query(self.model.prepare(images))
        return self.search_codes(codes, k, max_distance, logits)

    def search_codes(self, codes: np.ndarray, k: int = 10, max_distance: int | None = None,
                     logits: np.ndarray | None = None) -> list[Hits]:
        """As :meth:`search`, for codes: packed (N, bits / 8) uint8, or (N, bits) booleans; ``logits``, the
        pre-activations the codes are the signs of, order ties where given."""
        codes = np.atleast_2d(codes)
        if codes.dtype == bool:
            codes = pack_bits(codes)
        self._searcher.refresh()
        return self._searcher.search(codes, k, max_distance, logits)

    def add(self, paths: Sequence[str | Path], checkpoint: str | Path | None = None) -> indexer.Report:
        """Add the new and changed images under ``paths`` (folders or image files); unchanged files are skipped."""
        return indexer.add(paths, self.dir, IndexOptions(checkpoint=_str(checkpoint), progress=False))

    def remove(self, ids: Sequence[int]) -> indexer.Report:
        """Remove items by id (a hit's ``id``); an unknown id removes nothing and raises ItemNotFoundError."""
        return indexer.remove(self.dir, ids=[int(i) for i in ids])

    def duplicates(self, max_distance: int | None = None) -> list[list[Member]]:
        """Groups of items whose copy codes lie within ``max_distance`` bits of each other (None: the distance
        their model records), largest first; the first member of each group is the one to keep (the largest
        image). The copy codes are the packaged copy model's, where the index keeps them (IndexStore.copies)."""
        return duplicates_of(self.dir, max_distance, progress=False)[0]

    def copies_of(self, images: ImageLike | Sequence[ImageLike], max_distance: int | None = None) -> list[Hits]:
        """The indexed copies of each image (one :class:`Hits` list per image, nearest first): every item whose
        copy code lies within ``max_distance`` of the image's (None: the distance their model records)."""
        searcher = self._searcher
        searcher.refresh()
        prepared = Model(searcher.copy_model or searcher.model).prepare(images)
        distance = searcher.dedup_distance if max_distance is None else max_distance
        return searcher.duplicates(searcher.copy_query(prepared), distance)


def open_index(index_dir: str | Path, checkpoint: str | Path | None = None) -> Index:
    """Open the index at ``index_dir``; queries are encoded by the model it was built with, or ``checkpoint``.

    Raises:
        nac_hash.index_data.store.IndexDirError: not an index directory.
        nac_hash.index_data.store.CheckpointMismatchError: ``checkpoint`` is not the index's model.
    """
    return Index(Searcher.open(index_dir, checkpoint))


def build_index(paths: Sequence[str | Path], index_dir: str | Path, checkpoint: str | Path | None = None,
                progress: bool = False) -> Index:
    """Index every image under ``paths`` into a new ``index_dir`` (replacing an index there) and open it; the
    model is ``checkpoint``, or the packaged default. Unreadable files are skipped and listed in its report.json."""
    indexer.build(paths, index_dir, IndexOptions(checkpoint=_str(checkpoint), progress=progress))
    return open_index(index_dir)


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)
