"""One scoring path for ``nac-hash eval`` and ``nac-hash bench map``: the data and split to score on, the
pixel baselines, and the metrics summary of a set of codes.

Baselines (``BASELINES``): ``lsh`` (random hyperplanes on pixels), ``itq`` (ITQ on a PCA of pixels), both
fitted on the training split, and ``phash`` (the 64-bit DCT perceptual hash of ImageHash).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nac_hash.baselines import ITQ, RandomHyperplaneLSH, perceptual_codes
from nac_hash.metrics import RetrievalMetrics, evaluate_retrieval
from nac_hash.training.datasets import ImageSet, load_dataset
from nac_hash.training.splits import Protocol, Split, get_protocol, make_split

logger = logging.getLogger(__name__)

PHASH_BITS = 64


@dataclass(frozen=True)
class ScoringData:
    """Decoded images, the protocol and its split: everything a method is scored on."""

    data: ImageSet
    protocol: Protocol
    split: Split

    @property
    def metric(self) -> str:
        return f"mAP@{self.protocol.map_k}" if self.protocol.map_k else "mAP@all"

    def describe(self) -> str:
        return (f"{self.data.description}, protocol {self.protocol.name} ({len(self.split.query):,} queries, "
                f"{len(self.split.database):,} database images, {len(self.split.train):,} training images)")


def load_scoring_data(dataset: str, data_root: str | Path, protocol: str, split_seed: int, image_size: int,
                      queries: int | None = None, train_images: int | None = None) -> ScoringData:
    """Load ``dataset`` and draw the protocol's split; unlabelled data is refused, it has nothing to score."""
    spec = get_protocol(protocol)
    data = load_dataset(dataset, data_root, image_size)
    split = make_split(spec, data.labels, data.is_test, split_seed, queries, train_images, data.class_names)
    if len(split.query) == 0:
        raise ValueError(f"{data.description} has no class labels, so retrieval cannot be scored on it; lay it "
                         "out as ROOT/<class>/ or ROOT/{train,test}/<class>/ to score it (training and indexing "
                         "work as it is)")
    scoring = ScoringData(data, spec, split)
    logger.info("scoring on %s", scoring.describe())
    return scoring


def pixel_features(data: ImageSet) -> np.ndarray:
    """(N, S * S * 3) float32 pixels in [0, 1]: the features of the pixel baselines."""
    return data.images.reshape(len(data.images), -1).astype(np.float32) / 255.0


def lsh_codes(data: ImageSet, split: Split, bits: int, seed: int) -> np.ndarray:
    """Random-hyperplane LSH on raw pixels, centred on the training split."""
    pixels = pixel_features(data)
    return RandomHyperplaneLSH(bits, seed).fit(pixels[split.train]).encode(pixels)


def itq_codes(data: ImageSet, split: Split, bits: int, seed: int) -> np.ndarray:
    """ITQ on a PCA of raw pixels, fitted on the training split."""
    pixels = pixel_features(data)
    return ITQ(bits, seed=seed).fit(pixels[split.train]).encode(pixels)


def _phash(data: ImageSet, split: Split, bits: int, seed: int) -> np.ndarray:
    return perceptual_codes(data.images)


BASELINES: dict[str, Callable[[ImageSet, Split, int, int], np.ndarray]] = {
    "lsh": lsh_codes,
    "itq": itq_codes,
    "phash": _phash,
}


def baseline_bits(name: str, bits: int) -> int:
    """pHash is always 64 bits; the others take the requested length."""
    return PHASH_BITS if name == "phash" else bits


def check_baselines(names: tuple[str, ...] | list[str]) -> None:
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {', '.join(unknown)}; choose from {', '.join(BASELINES)} (--baselines)")


def summarize(metrics: RetrievalMetrics, map_k: int | None) -> dict:
    return {
        "map": metrics.protocol_map(map_k),
        "map_all": metrics.map_all,
        "tie_aware_map": metrics.tie_aware_map,
        **{f"map@{k}": v for k, v in metrics.map_at.items()},
        **{f"precision@{k}": v for k, v in metrics.precision_at.items()},
        "distinct_codes": metrics.distinct_database_codes,
        "num_queries": metrics.num_queries,
        "database_size": metrics.database_size,
        "pr_curve": metrics.pr_curve,
    }


def score_codes(codes: np.ndarray, data: ImageSet, split: Split, map_k: int | None) -> dict:
    """Codes for every image of ``data`` (only query and database rows are read) -> a metrics summary."""
    metrics = evaluate_retrieval(codes[split.query], codes[split.database], data.labels[split.query],
                                 data.labels[split.database], map_ks=(1000,), precision_ks=(1000,))
    return summarize(metrics, map_k)


def score_baseline(name: str, scoring: ScoringData, bits: int, seed: int) -> dict:
    codes = BASELINES[name](scoring.data, scoring.split, baseline_bits(name, bits), seed)
    return score_codes(codes, scoring.data, scoring.split, scoring.protocol.map_k)
