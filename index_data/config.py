"""Options of the indexer, importable without FAISS: the command line builds its options from them."""

from __future__ import annotations

from dataclasses import dataclass

from nac_hash.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

# Hamming distance within which two images count as copies (nac-hash dedup, the service's duplicates routes)
# for a model that records none: a copy model records its own, calibrated for its longer code (``nac-hash
# export --dedup-distance``), and an index records its model's when it is built.
DEFAULT_DEDUP_DISTANCE = 4


def dedup_distance(record: dict) -> int:
    """The copy distance a checkpoint's sidecar or an index's meta records, else DEFAULT_DEDUP_DISTANCE."""
    return int(record.get("dedup_distance", DEFAULT_DEDUP_DISTANCE))


def is_copy_model(sidecar: dict) -> bool:
    """Whether a checkpoint is a copy model: one that records the distance at which it calls images copies."""
    return "dedup_distance" in sidecar


@dataclass(frozen=True)
class IndexOptions:
    """How files are read and encoded; every field is a command-line option of `nac-hash index`.

    Attributes:
        checkpoint: model to encode with: a file, or a packaged model's name, default or copies (default: the
            packaged retrieval model for a build, the index's own for an add).
        index_type: flat, ivf, hnsw, multihash, a FAISS binary factory string, or milvus:URI to keep the codes
            in Milvus (a local file for Milvus Lite, or http://host:19530).
        batch_size: images encoded per forward pass.
        workers: threads reading, hashing and decoding files.
        max_pixels: larger images are skipped (decompression bombs).
        max_bytes: larger files are skipped.
        device: torch device for encoding.
        progress: show a progress bar.
        shard: "i/n" to index only shard i of n (merge the shards with `nac-hash index merge`).
        copy_codes: with a retrieval model, also keep each image's code from the packaged copy model, by which
            dedup and the service's duplicates routes find copies (index_data.store.CopyCodes); a build only.
    """

    checkpoint: str | None = None
    index_type: str = "flat"
    batch_size: int = 256
    workers: int = 8
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    device: str = "cpu"
    progress: bool = True
    shard: str | None = None
    copy_codes: bool = True
