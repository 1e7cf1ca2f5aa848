"""Benchmark protocols of the unsupervised hashing literature: which images train, which query, which form the database.

Splits are drawn from a seed with NumPy's PCG64 and saved as an ``.npz`` of int64 indices beside every
result, so a published number can be re-scored on exactly the same images. Query and database indices are
kept in a seeded random order: metrics break Hamming ties by database position, and the datasets are stored
sorted by class, so keeping file order would reward codes that tie whole classes together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nac_hash.atomic import atomic_path


@dataclass(frozen=True)
class Protocol:
    """How a protocol splits the data and scores it.

    ``kind`` is ``per_class`` (queries and training images drawn per class, from merged train+test),
    ``official`` (query = official test images, database = training = official training images) or
    ``random`` (label-agnostic draws, for multi-label data) or ``folder`` (whichever fits an image folder:
    ``official`` when it has test/ and train/, ``per_class`` with counts that scale with the smallest class
    when it has class folders, and every image for training when it is unlabelled). ``map_k`` None means
    mAP@all.
    """

    name: str
    dataset: str
    kind: str
    queries: int
    train: int
    map_k: int | None


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("cifar10-nac", "cifar10", "per_class", queries=1000, train=500, map_k=None),
        Protocol("cifar10-i", "cifar10", "official", queries=0, train=0, map_k=1000),
        Protocol("cifar10-ii", "cifar10", "per_class", queries=1000, train=500, map_k=1000),
        Protocol("flickr25k", "flickr25k", "random", queries=2000, train=5000, map_k=None),
        Protocol("folder", "folder", "folder", queries=1000, train=0, map_k=None),
    )
}
# Per-class folder defaults: a tenth of the smallest class (at most ``Protocol.queries``) are queries, every
# other image is in the database and the training pool, however unequal the classes (training uses no labels).
FOLDER_QUERY_SHARE = 0.1


def default_protocol(dataset: str) -> str:
    """The protocol a dataset is scored by when none is named."""
    return next(p.name for p in PROTOCOLS.values() if p.dataset == dataset)


@dataclass(frozen=True)
class Split:
    protocol: str
    seed: int
    train: np.ndarray
    query: np.ndarray
    database: np.ndarray


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def folder_kind(labels: np.ndarray, is_test: np.ndarray) -> str:
    """The split kind an image folder gets (see :class:`Protocol`)."""
    if is_test.any() and not is_test.all():
        return "official"
    return "per_class" if labels.ndim == 1 and len(labels) and (labels >= 0).all() else "unlabelled"


def make_split(protocol: Protocol, labels: np.ndarray, is_test: np.ndarray, seed: int,
               queries: int | None = None, train: int | None = None, class_names: list[str] | None = None) -> Split:
    """Draw a split; ``queries``/``train`` override the protocol's counts (per class for per-class kinds)."""
    rng = np.random.default_rng(seed)
    kind = folder_kind(labels, is_test) if protocol.kind == "folder" else protocol.kind
    if kind == "unlabelled":
        everything = np.arange(len(labels))
        return Split(protocol.name, seed, everything, everything[:0], everything)
    every_non_query = protocol.kind == "folder" and kind == "per_class" and train is None
    if protocol.kind == "folder" and kind == "per_class" and queries is None:
        smallest = int(np.bincount(labels)[np.unique(labels)].min())
        queries = min(protocol.queries, max(1, int(FOLDER_QUERY_SHARE * smallest)))
    queries = protocol.queries if queries is None else queries
    train = protocol.train if train is None else train
    if kind == "official":
        if not is_test.any() or is_test.all():
            raise ValueError(f"protocol {protocol.name} needs both official training and test images (a folder "
                             "needs train/<class>/ and test/<class>/ sub-folders); choose another --protocol")
        train_images = np.flatnonzero(~is_test)
        return Split(protocol.name, seed, train_images, rng.permutation(np.flatnonzero(is_test)),
                     rng.permutation(train_images))
    if kind == "per_class":
        if labels.ndim != 1 or (labels < 0).any():
            raise ValueError(f"protocol {protocol.name} needs one class label per image (class sub-folders)")
        query_parts, train_parts, database_parts = [], [], []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            if len(members) < queries + train:
                name = class_names[label] if class_names else str(label)
                raise ValueError(f"class {name} has {len(members)} images, fewer than {queries} queries plus {train} "
                                 "training images per class; lower --queries or --train-images (counts per class)")
            query_parts.append(members[:queries])
            database_parts.append(members[queries:])
            train_parts.append(members[queries:] if every_non_query else members[queries : queries + train])
        return Split(protocol.name, seed, np.sort(np.concatenate(train_parts)),
                     rng.permutation(np.concatenate(query_parts)), rng.permutation(np.concatenate(database_parts)))
    if len(labels) < queries + train:
        raise ValueError(f"{len(labels)} images are fewer than {queries} queries plus {train} training images; "
                         "lower --queries or --train-images")
    order = rng.permutation(len(labels))
    return Split(protocol.name, seed, np.sort(order[queries : queries + train]), order[:queries], order[queries:])


def save_split(split: Split, path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, protocol=np.array(split.protocol), seed=np.array(split.seed),
                            train=split.train, query=split.query, database=split.database)


def load_split(path: str | Path) -> Split:
    with np.load(path, allow_pickle=False) as data:
        return Split(str(data["protocol"]), int(data["seed"]), data["train"], data["query"], data["database"])
