"""Benchmark protocols (NAC_NOTES section 3): which images train, which query, which form the database.

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
    ``random`` (label-agnostic draws, for multi-label or unlabelled data). ``map_k`` None means mAP@all.
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
    )
}


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


def make_split(protocol: Protocol, labels: np.ndarray, is_test: np.ndarray, seed: int,
               queries: int | None = None, train: int | None = None) -> Split:
    """Draw a split; ``queries``/``train`` override the protocol's counts (per class for per-class kinds)."""
    queries = protocol.queries if queries is None else queries
    train = protocol.train if train is None else train
    rng = np.random.default_rng(seed)
    if protocol.kind == "official":
        if not is_test.any() or is_test.all():
            raise ValueError(f"protocol {protocol.name} needs data with both official training and test images")
        train_images = np.flatnonzero(~is_test)
        return Split(protocol.name, seed, train_images, rng.permutation(np.flatnonzero(is_test)),
                     rng.permutation(train_images))
    if protocol.kind == "per_class":
        if labels.ndim != 1 or (labels < 0).any():
            raise ValueError(f"protocol {protocol.name} needs one class label per image")
        query_parts, train_parts, database_parts = [], [], []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            if len(members) < queries + train:
                raise ValueError(f"class {label} has {len(members)} images, fewer than {queries} queries "
                                 f"plus {train} training images")
            query_parts.append(members[:queries])
            database_parts.append(members[queries:])
            train_parts.append(members[queries : queries + train])
        return Split(protocol.name, seed, np.sort(np.concatenate(train_parts)),
                     rng.permutation(np.concatenate(query_parts)), rng.permutation(np.concatenate(database_parts)))
    if len(labels) < queries + train:
        raise ValueError(f"{len(labels)} images are fewer than {queries} queries plus {train} training images")
    order = rng.permutation(len(labels))
    return Split(protocol.name, seed, np.sort(order[queries : queries + train]), order[:queries], order[queries:])


def save_split(split: Split, path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, protocol=np.array(split.protocol), seed=np.array(split.seed),
                            train=split.train, query=split.query, database=split.database)


def load_split(path: str | Path) -> Split:
    with np.load(path, allow_pickle=False) as data:
        return Split(str(data["protocol"]), int(data["seed"]), data["train"], data["query"], data["database"])
