"""Retrieval metrics over Hamming rankings.

Conventions (the ones published numbers are most often computed with, stated so they can be checked):

* Ranking is by true Hamming distance; items at the same distance keep database order (a stable sort),
  which is what ``mAP@all`` and ``mAP@k`` use.
* ``tie-aware mAP`` is the expected AP over all orders of the items tied at each distance (the closed form
  of McSherry & Najork, ECIR 2008), so it does not depend on database order at all.
* Relevance: single-label data, same label; multi-label data, at least one shared label.
* AP@all divides by the number of relevant items in the database; AP@k divides by the number of relevant
  items in the top k (the convention of the deep-hashing literature's mAP@1000). A query with no relevant
  item scores 0 and stays in the mean.
* Precision-recall points are taken at every Hamming radius 0..D; a query that retrieves nothing within a
  radius is left out of the precision mean at that radius.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nac_hash.codes import hamming_distance


@dataclass
class RetrievalMetrics:
    """Scores of one query set against one database; the ``*_at`` dicts are keyed by k."""

    map_all: float
    tie_aware_map: float
    map_at: dict[int, float] = field(default_factory=dict)
    precision_at: dict[int, float] = field(default_factory=dict)
    pr_curve: list[dict[str, float]] = field(default_factory=list)
    num_queries: int = 0
    database_size: int = 0
    distinct_database_codes: int = 0

    def protocol_map(self, map_k: int | None) -> float:
        """The mAP a protocol reports: mAP@k when it names a k (which must be among ``map_at``), else mAP@all."""
        return self.map_at[map_k] if map_k else self.map_all


def relevance(query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    """(Q, N) boolean relevance: equal labels for 1-D int labels, any shared label for 2-D multi-hot."""
    query_labels = np.asarray(query_labels)
    database_labels = np.asarray(database_labels)
    if query_labels.ndim != database_labels.ndim or query_labels.ndim not in (1, 2):
        raise ValueError("labels must both be 1-D class ids or both be 2-D multi-hot matrices")
    if query_labels.ndim == 1:
        return query_labels[:, None] == database_labels[None, :]
    shared = query_labels.astype(np.float32) @ database_labels.astype(np.float32).T
    return shared > 0


def _harmonic(n: int) -> np.ndarray:
    """H[i] = 1 + 1/2 + ... + 1/i for i in 0..n (H[0] = 0)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def _histograms(distance: np.ndarray, relevant: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query and distance 0..D: the number of database items and of relevant ones, as float64."""
    rows = distance.shape[0]
    offsets = (np.arange(rows)[:, None] * (bits + 1) + distance).ravel()
    items = np.bincount(offsets, minlength=rows * (bits + 1)).reshape(rows, bits + 1).astype(np.float64)
    hits = np.bincount(offsets, weights=relevant.ravel(), minlength=rows * (bits + 1))
    return items, hits.reshape(rows, bits + 1)


def _tie_aware_ap(n: np.ndarray, r: np.ndarray, harmonic: np.ndarray) -> np.ndarray:
    """Expected AP over random orders within each distance, from the per-distance counts n and r.

    For a group of n tied items holding r relevant ones, with s items and R_prev relevant items ranked
    before it, a relevant item at group position i has expected precision
    (R_prev + 1 + (i - 1)(r - 1)/(n - 1)) / (s + i); summing over i uses harmonic numbers.
    """
    s = np.cumsum(n, axis=1) - n
    r_prev = np.cumsum(r, axis=1) - r
    delta_h = harmonic[(s + n).astype(np.int64)] - harmonic[s.astype(np.int64)]
    spread = np.divide(r - 1, n - 1, out=np.zeros_like(n), where=n > 1)
    expected = (r_prev + 1) * delta_h + spread * (n - (s + 1) * delta_h)
    contribution = np.divide(r, n, out=np.zeros_like(n), where=n > 0) * expected
    total_relevant = r.sum(axis=1)
    return np.divide(contribution.sum(axis=1), total_relevant, out=np.zeros(len(n)), where=total_relevant > 0)


def _average_precisions(ranked: np.ndarray, map_ks: Sequence[int]) -> tuple[np.ndarray, np.ndarray, dict]:
    """From (Q, N) relevance in ranked order: the running hit counts, each query's AP@all and its AP@k."""
    hits = np.cumsum(ranked, axis=1)
    precision = hits / np.arange(1, ranked.shape[1] + 1, dtype=np.float64)
    total = hits[:, -1]
    ap = np.divide((precision * ranked).sum(axis=1), total, out=np.zeros(len(total)), where=total > 0)
    ap_at = {}
    for k in map_ks:
        found = hits[:, min(k, ranked.shape[1]) - 1]
        ap_k = (precision[:, :k] * ranked[:, :k]).sum(axis=1)
        ap_at[k] = np.divide(ap_k, found, out=np.zeros(len(found)), where=found > 0)
    return hits, ap, ap_at


def cosine_map(query_features: np.ndarray, database_features: np.ndarray, query_labels: np.ndarray,
               database_labels: np.ndarray, map_ks: Sequence[int] = (1000,), chunk_size: int = 128) -> dict:
    """mAP@all and mAP@k of float features ranked by cosine similarity (ties in database order), as a
    reference for what hashing the same features costs."""
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    queries, database = unit(query_features), unit(database_features)
    sums = {"map_all": 0.0, **{f"map@{k}": 0.0 for k in map_ks}}
    for start in range(0, len(queries), chunk_size):
        similarity = queries[start : start + chunk_size] @ database.T
        relevant = relevance(query_labels[start : start + chunk_size], database_labels)
        ranked = np.take_along_axis(relevant, np.argsort(-similarity, axis=1, kind="stable"), axis=1)
        _, ap, ap_at = _average_precisions(ranked, map_ks)
        sums["map_all"] += ap.sum()
        for k in map_ks:
            sums[f"map@{k}"] += ap_at[k].sum()
    return {name: float(value / len(queries)) for name, value in sums.items()}


def evaluate_retrieval(
    query_codes: np.ndarray,
    database_codes: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    map_ks: Sequence[int] = (1000,),
    precision_ks: Sequence[int] = (1000,),
    chunk_size: int = 128,
) -> RetrievalMetrics:
    """Score packed query codes against packed database codes; see the module docstring for conventions."""
    if len(query_codes) != len(query_labels) or len(database_codes) != len(database_labels):
        raise ValueError("each code set needs exactly one label entry per code")
    num_db = len(database_codes)
    bits = database_codes.shape[1] * 8
    harmonic = _harmonic(num_db)
    sums = {"map_all": 0.0, "tie_aware_map": 0.0}
    map_at = dict.fromkeys(map_ks, 0.0)
    precision_at = dict.fromkeys(precision_ks, 0.0)
    pr_retrieved = np.zeros(bits + 1)
    pr_precision = np.zeros(bits + 1)
    pr_recall = np.zeros(bits + 1)

    for start in range(0, len(query_codes), chunk_size):
        stop = start + chunk_size
        distance = hamming_distance(query_codes[start:stop], database_codes)
        relevant = relevance(query_labels[start:stop], database_labels)
        ranked = np.take_along_axis(relevant, np.argsort(distance, axis=1, kind="stable"), axis=1)
        hits, ap, ap_at = _average_precisions(ranked, map_ks)
        total = hits[:, -1]
        sums["map_all"] += ap.sum()
        for k in map_ks:
            map_at[k] += ap_at[k].sum()
        for k in precision_ks:
            precision_at[k] += (hits[:, min(k, num_db) - 1] / k).sum()
        items, item_hits = _histograms(distance, relevant, bits)
        sums["tie_aware_map"] += _tie_aware_ap(items, item_hits, harmonic).sum()
        retrieved, relevant_retrieved = np.cumsum(items, axis=1), np.cumsum(item_hits, axis=1)
        pr_retrieved += (retrieved > 0).sum(axis=0)
        pr_precision += np.divide(relevant_retrieved, retrieved, out=np.zeros_like(relevant_retrieved),
                                  where=retrieved > 0).sum(axis=0)
        pr_recall += np.divide(relevant_retrieved, total[:, None], out=np.zeros_like(relevant_retrieved),
                               where=total[:, None] > 0).sum(axis=0)

    num_queries = len(query_codes)
    curve = [
        {"radius": radius, "precision": float(pr_precision[radius] / pr_retrieved[radius]),
         "recall": float(pr_recall[radius] / num_queries)}
        for radius in range(bits + 1) if pr_retrieved[radius] > 0
    ]
    return RetrievalMetrics(
        map_all=float(sums["map_all"] / num_queries),
        tie_aware_map=float(sums["tie_aware_map"] / num_queries),
        map_at={k: float(v / num_queries) for k, v in map_at.items()},
        precision_at={k: float(v / num_queries) for k, v in precision_at.items()},
        pr_curve=curve,
        num_queries=num_queries,
        database_size=num_db,
        distinct_database_codes=len(np.unique(database_codes, axis=0)),
    )
