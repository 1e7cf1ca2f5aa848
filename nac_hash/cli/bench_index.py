"""Speed of the indexer and of search: `nac-hash bench index` and `nac-hash bench search`.

Search is timed at a chosen database size for every index type, through our API (:class:`HammingIndex`, and the
full :class:`Searcher` for the flat index, reading every hit's path and label) and through the raw FAISS index under it,
in the same process and on the same queries, with recall@k of the approximate types against exact search.

The database is grown from real codes: each synthetic code is a real one with 0 to 3 random bits flipped, so
it keeps the clustered structure of a trained model's codes (uniformly random codes would make every
approximate index look either perfect or useless). Queries are real codes with 1 to 4 bits flipped.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nac_hash.atomic import write_json
from nac_hash.codes import hamming_distance
from nac_hash.index_data.catalog import NewItem
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.index import INDEX_TYPES, HammingIndex, set_threads
from nac_hash.index_data.indexer import build, write_index
from nac_hash.index_data.search import Searcher
from nac_hash.index_data.search_params import SearchParams
from nac_hash.index_data.store import IndexStore
from nac_hash.provenance import provenance

logger = logging.getLogger(__name__)


def bench_index(folders: Sequence[str | Path], options: IndexOptions, out: Path | None = None) -> dict:
    """Time a full build of ``folders`` into a scratch index: images/s from files on disk to a saved index."""
    with tempfile.TemporaryDirectory() as scratch:
        report = build(folders, Path(scratch) / "index", options)
    result = {"benchmark": "index build", "folders": [str(f) for f in folders], "images": report.total,
              "skipped": len(report.skipped), "seconds": round(report.seconds, 2),
              "images_per_second": round(report.total / report.seconds, 1), "options": vars(options),
              **provenance()}
    if out:
        write_json(out, result)
    return result


def flip_bits(codes: np.ndarray, max_flips: int, min_flips: int, rng: np.random.Generator) -> np.ndarray:
    """Copies of packed ``codes``, each with between ``min_flips`` and ``max_flips`` random bits flipped.

    Bits are drawn independently, so a code may draw the same bit twice and keep it.
    """
    flipped = codes.copy()
    counts = rng.integers(min_flips, max_flips + 1, len(codes))
    for flip in range(max_flips):
        rows = np.flatnonzero(counts > flip)
        bit = rng.integers(0, codes.shape[1] * 8, len(rows))
        flipped[rows, bit // 8] ^= (0x80 >> (bit % 8)).astype(np.uint8)
    return flipped


def grow_codes(seed_codes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` codes: the seed codes first, then perturbed copies of random seed codes."""
    extra = seed_codes[rng.integers(0, len(seed_codes), max(0, size - len(seed_codes)))]
    return np.concatenate([seed_codes, flip_bits(extra, 3, 0, rng)])[:size]


def _queries_per_second(search: Callable[[np.ndarray], object], queries: np.ndarray, batch: int,
                        repeats: int = 3) -> float:
    """Median over ``repeats`` of queries/s when ``queries`` are sent ``batch`` at a time."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(queries), batch):
            search(queries[i : i + batch])
        rates.append(len(queries) / (time.perf_counter() - start))
    return statistics.median(rates)


def recall_at_k(found: np.ndarray, queries: np.ndarray, codes: np.ndarray, kth_distance: np.ndarray) -> float:
    """Share of the k returned ids (positions here) within the exact k-th nearest distance of their query.

    Codes tied at the k-th distance are interchangeable, so any of them counts as a true neighbour.
    """
    hits = 0
    for q, positions in enumerate(found):
        positions = positions[positions >= 0]
        hits += int(np.sum(hamming_distance(queries[q : q + 1], codes[positions])[0] <= kth_distance[q]))
    return hits / found.size


def synthetic_index(directory: Path, codes: np.ndarray, model_meta: dict | None = None) -> None:
    """A flat index directory over ``codes``, one catalog row per code (paths ``/synthetic/<n>.jpg``).

    ``model_meta`` (checkpoint and model fields of a real index's meta) lets it encode query images too.
    """
    meta = {"bits": codes.shape[1] * 8, "checkpoint_sha256": "", "checkpoint_path": "", "model": {},
            **{k: v for k, v in (model_meta or {}).items() if k in ("checkpoint_sha256", "checkpoint_path", "model")},
            "index_type": "flat"}
    items = [NewItem("/synthetic", f"{i:07d}.jpg", 0, 0, "", None, code.tobytes()) for i, code in enumerate(codes)]
    write_index(directory, meta, lambda catalog: items)


def bench_search(seed_codes: np.ndarray, size: int, index_types: Sequence[str] = INDEX_TYPES, queries: int = 1000,
                 k: int = 100, threads: int | None = None, params: SearchParams | None = None, seed: int = 0,
                 out: Path | None = None) -> dict:
    """Queries/s of our API and of raw FAISS, and recall@k, for each index type over ``size`` codes."""
    set_threads(threads)
    rng = np.random.default_rng(seed)
    codes = grow_codes(seed_codes, size, rng)
    query_codes = flip_bits(seed_codes[rng.integers(0, len(seed_codes), queries)], 4, 1, rng)
    ids = np.arange(len(codes), dtype=np.int64)
    exact = HammingIndex.build(codes, ids, "flat")
    kth = exact.search(query_codes, k)[0][:, -1]
    results = {}
    for index_type in index_types:
        start = time.perf_counter()
        index = exact if index_type == "flat" else HammingIndex.build(codes, ids, index_type, params=params)
        build_seconds = time.perf_counter() - start
        row = {"build_seconds": round(build_seconds, 2),
               "recall_at_k": round(recall_at_k(index.search(query_codes, k)[1], query_codes, codes, kth), 4)}
        for batch in (1, 100):
            ours = _queries_per_second(lambda q, index=index: index.search(q, k), query_codes, batch)
            raw = _queries_per_second(lambda q, index=index: index.index.search(q, k), query_codes, batch)
            row[f"batch{batch}"] = {"ours_qps": round(ours, 1), "raw_faiss_qps": round(raw, 1),
                                    "ours_over_raw": round(ours / raw, 3)}
        logger.info("%s: %s", index_type, row)
        results[index_type] = row
    if "flat" in index_types:
        with tempfile.TemporaryDirectory() as scratch:
            synthetic_index(Path(scratch), codes)
            store = IndexStore(scratch)
            searcher = Searcher(store, None, *store.load_index())
            for batch in (1, 100):
                qps = _queries_per_second(lambda q: [(hits.paths, hits.labels) for hits in searcher.search(q, k)],
                                          query_codes, batch)
                raw = results["flat"][f"batch{batch}"]["raw_faiss_qps"]
                results["flat"][f"batch{batch}"].update(searcher_with_metadata_qps=round(qps, 1),
                                                        searcher_over_raw=round(qps / raw, 3))
            store.close()
    result = {"benchmark": "search", "database_codes": size, "seed_codes": len(seed_codes), "queries": queries,
              "k": k, "faiss_threads": threads, "params": vars(params or SearchParams()), "index_types": results,
              **provenance()}
    if out:
        write_json(out, result)
    return result
