"""``nac-hash bench copies``: how well each hash finds the original of a modified copy among many images.

Originals come from a folder of images (default: the CIFAR-10 test images, which no packaged model trained
on); a seeded sample of them is turned into queries by each transform of ``TRANSFORMS`` (and a chain of three),
and every query is searched among the originals plus distractors (default: the CIFAR-10 training images). The
same is done, in ``seen``, for a sample of the distractors, the images a model trained on CIFAR-10's training
split has seen: the gap between the two says how much of a model's score is memory. Per method and transform:
recall@1 and recall@10 (the original among the nearest 1 or 10), and the precision and recall of "is a copy" when a
Hamming threshold decides it (recall: queries whose original lies within the threshold; precision: originals
among all database images within it), with their means over the edits at the distance the model records for
nac-hash dedup. Methods: NAC (a checkpoint), pHash, dHash, aHash and wHash
(ImageHash, 64 bits), LSH and ITQ on pixels (fitted on the distractors).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from nac_hash.atomic import atomic_path, write_json
from nac_hash.baselines import ITQ, PERCEPTUAL_HASHES, RandomHyperplaneLSH, perceptual_codes
from nac_hash.checkpoint import default_checkpoint, load_checkpoint
from nac_hash.images import exif_orientation, list_images, square_image, upright
from nac_hash.index_data.backends import CodeIndex, build_index
from nac_hash.index_data.config import dedup_distance
from nac_hash.inference import encode_images
from nac_hash.progress import progress_bar
from nac_hash.provenance import portable, provenance

logger = logging.getLogger(__name__)

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cut away 10-30% of the area."""
    keep = np.sqrt(rng.uniform(0.7, 0.9))
    w, h = image.size
    cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
    left, top = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    return image.crop((left, top, left + cw, top + ch))


def _resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def _jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(20, 61)))
    return Image.open(buffer).convert("RGB")


def _text(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = image.copy()
    x, y = rng.integers(0, max(1, image.width // 2)), rng.integers(0, max(1, image.height - 10))
    ImageDraw.Draw(image).text((int(x), int(y)), "(c)nac", fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def _colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhance(image).enhance(rng.uniform(0.6, 1.4))
    return image


TRANSFORMS: dict[str, Transform] = {
    "crop": _crop,
    "resize": _resize,
    "jpeg": _jpeg,
    "flip": lambda image, rng: ImageOps.mirror(image),
    "rotate": lambda image, rng: image.rotate(rng.uniform(-10, 10), Image.Resampling.BILINEAR),
    "colour": _colour,
    "grayscale": lambda image, rng: ImageOps.grayscale(image).convert("RGB"),
    "blur": lambda image, rng: image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5))),
    "text": _text,
}


def _chain(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for name in rng.choice(list(TRANSFORMS), 3, replace=False):
        image = TRANSFORMS[name](image, rng)
    return image


ALL_TRANSFORMS = {**TRANSFORMS, "chain3": _chain}
METHODS = ("nac", *PERCEPTUAL_HASHES, "lsh", "itq")


def _load(files: list[Path]) -> list[Image.Image]:
    images = []
    for file in progress_bar(files, desc="load", unit="img"):
        with Image.open(file) as image:
            images.append(upright(image.convert("RGB"), exif_orientation(image)))
    return images


class Coder:
    """Codes of PIL images for one method; pixel methods are fitted on the distractors first."""

    def __init__(self, method: str, model, size: int, fit_images: list[Image.Image], seed: int) -> None:
        self.method, self.model, self.size = method, model, size
        if method in ("lsh", "itq"):
            pixels = self._pixels(fit_images)
            bits = model.config.code_bits
            self.projection = (ITQ(bits, seed=seed) if method == "itq" else RandomHyperplaneLSH(bits, seed)).fit(pixels)

    def _pixels(self, images: list[Image.Image]) -> np.ndarray:
        squares = np.stack([square_image(image, self.size) for image in images])
        return squares.reshape(len(squares), -1).astype(np.float32) / 255.0

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        if self.method == "nac":
            return encode_images(self.model, np.stack([square_image(image, self.size) for image in images]))
        if self.method in PERCEPTUAL_HASHES:
            return perceptual_codes(images, self.method)
        return self.projection.encode(self._pixels(images))


def _copies(database: list[Image.Image], rows: np.ndarray, seed: int) -> dict[str, list[Image.Image]]:
    """Each transform's copies of the database images at ``rows`` (seeded per transform and image)."""
    return {name: [transform(database[i], np.random.default_rng([seed, j, i])) for i in rows]
            for j, (name, transform) in enumerate(ALL_TRANSFORMS.items())}


def _at_distance(scores: dict, distance: int) -> dict:
    """Mean precision and recall over the edits of "is a copy" within ``distance``, as nac-hash dedup decides it."""
    at = [scores[t]["pr"][distance] for t in ALL_TRANSFORMS]
    return {"distance": distance, "precision": float(np.mean([a["precision"] for a in at])),
            "recall": float(np.mean([a["recall"] for a in at]))}


def _mean_recall(scores: dict) -> float:
    return float(np.mean([scores[t]["recall@1"] for t in ALL_TRANSFORMS]))


def _scores(index: CodeIndex, queries: np.ndarray, truth: np.ndarray, thresholds: range) -> dict:
    """Recall@1/@10 and the copy-or-not precision/recall per threshold, for queries whose original is ``truth``
    (the index's ids are the database's positions)."""
    _, nearest = index.search(queries, 10)
    recall_at = {k: float(np.mean([t in row[:k] for t, row in zip(truth, nearest, strict=True)])) for k in (1, 10)}
    hits = np.zeros(len(thresholds)), np.zeros(len(thresholds))  # true copies, all items within the threshold
    for (d, ids), original in zip(index.range_search(queries, thresholds[-1]), truth, strict=True):
        is_original = ids == original
        for j, t in enumerate(thresholds):
            within = d <= t
            hits[0][j] += np.sum(within & is_original)
            hits[1][j] += np.sum(within)
    curve = [{"threshold": t, "recall": float(hits[0][j] / len(queries)),
              "precision": float(hits[0][j] / hits[1][j]) if hits[1][j] else 1.0} for j, t in enumerate(thresholds)]
    return {"recall@1": recall_at[1], "recall@10": recall_at[10], "pr": curve}


def bench_copies(out_dir: str | Path, originals: str | Path = "data/CIFAR-10-images/test",
                 distractors: str | Path | None = "data/CIFAR-10-images/train", queries: int = 1000,
                 checkpoint: str | None = None, methods: tuple[str, ...] = METHODS, seed: int = 0) -> dict:
    """Score every method on every transform; write results.json and recall-at-1.png to ``out_dir``."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {', '.join(unknown)}; choose from {', '.join(METHODS)} (--methods)")
    started = time.perf_counter()
    model, sidecar = load_checkpoint(checkpoint or default_checkpoint(), "cpu")
    distance = dedup_distance(sidecar)
    original_files = list_images(Path(originals))
    distractor_files = list_images(Path(distractors)) if distractors else []
    if len(original_files) < queries:
        raise ValueError(f"{originals} has {len(original_files)} images, fewer than --queries {queries}")
    database = _load(original_files + distractor_files)
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(original_files), queries, replace=False)
    seen = len(original_files) + rng.choice(len(distractor_files), min(queries, len(distractor_files)), replace=False)
    transformed, transformed_seen = _copies(database, truth, seed), _copies(database, seen, seed)
    fit = [database[i] for i in rng.choice(len(database), min(5000, len(database)), replace=False)]
    results: dict[str, dict] = {}
    for method in methods:
        coder = Coder(method, model, model.config.image_size, fit, seed)
        codes = coder(database)
        index = build_index(codes, np.arange(len(codes), dtype=np.int64), "flat", codes.shape[1] * 8)
        thresholds = range(0, codes.shape[1] * 8 // 4 + 1)
        results[method] = {"bits": codes.shape[1] * 8,
                            **{name: _scores(index, coder(images), truth, thresholds)
                               for name, images in transformed.items()}}
        results[method]["mean_recall@1"] = _mean_recall(results[method])
        if method == "nac" and distance in thresholds:
            results[method]["at_dedup_distance"] = _at_distance(results[method], distance)
        if len(seen):
            results[method]["seen"] = {name: {k: v for k, v in _scores(index, coder(images), seen, thresholds).items()
                                              if k != "pr"} for name, images in transformed_seen.items()}
            results[method]["seen"]["mean_recall@1"] = _mean_recall(results[method]["seen"])
        logger.info("%s: mean recall@1 %.3f", method, results[method]["mean_recall@1"])
    summary = {"benchmark": "copy detection", "originals": str(originals), "distractors": str(distractors),
               "database_size": len(database), "queries_per_transform": queries, "seed": seed,
               "checkpoint": portable(checkpoint or default_checkpoint()), "methods": results,
               "wall_time_s": round(time.perf_counter() - started, 1), **provenance()}
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", summary)
    plot_recall(results, out_dir / "recall-at-1.png")
    return summary


def plot_recall(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ALL_TRANSFORMS)
    figure, axes = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(1, len(results))
    for m, (method, scores) in enumerate(results.items()):
        axes.bar(np.arange(len(names)) + m * width, [scores[n]["recall@1"] for n in names], width,
                 label=f"{method} ({scores['bits']} bits, mean {scores['mean_recall@1']:.2f})")
    axes.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    axes.set(ylabel="recall@1", ylim=(0, 1), title="copy detection: the original at rank 1")
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
