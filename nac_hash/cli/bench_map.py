"""``nac-hash bench map``: several hashing methods on one split in one run.

Writes one table (printed, and ``results.json`` in the output folder), precision-recall curves
(``pr-curves.png``), a retrieval grid (``retrieval-grid.png``: queries and their top 10, framed green when
relevant, red when not) and a cross-check of our mAP against scikit-learn's ``average_precision_score`` on the
same codes.

Methods: ``lsh`` (random hyperplanes on pixels), ``itq`` (ITQ on a PCA of pixels), ``phash`` (64-bit DCT
perceptual hash) are computed here; learned methods are loaded from checkpoints trained by ``nac-hash train
--method ...`` (``--checkpoint simclr=runs/simclr/model.safetensors``; ``nac`` defaults to the packaged model).
NAC, NAC-MQ and SimCLR are scored by their sign codes; Deep InfoMax (``dim``) and AET (``aet``) learn
features, which are hashed with ITQ fitted on the training split.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nac_hash.atomic import atomic_path, write_json
from nac_hash.baselines import ITQ, NotEnoughDataError
from nac_hash.checkpoint import default_checkpoint, load_checkpoint
from nac_hash.codes import hamming_distance
from nac_hash.inference import embed_images, encode_images
from nac_hash.metrics import cosine_map, relevance
from nac_hash.provenance import portable, provenance
from nac_hash.training.config import CIFAR10_ROOT
from nac_hash.training.datasets import ImageSet
from nac_hash.training.methods import FEATURE_METHODS, METHODS
from nac_hash.training.scoring import BASELINES, baseline_bits, load_scoring_data, score_codes
from nac_hash.training.splits import Split, default_protocol, save_split
from nac_hash.training.train import resolve_device

logger = logging.getLogger(__name__)



def _check_methods(methods: Sequence[str]) -> None:
    for name in methods:
        if name not in BASELINES and name not in METHODS:
            raise ValueError(f"unknown method {name!r}; choose from {', '.join([*METHODS, *BASELINES])} (--methods)")


def sklearn_map(codes: np.ndarray, data: ImageSet, split: Split, queries: int) -> float:
    """mAP@all of the first ``queries`` queries by scikit-learn, on the same ranking as ours.

    The score is minus the Hamming distance, minus a fraction that grows with database position, so that
    scikit-learn sees exactly our tie-breaking (stable, by database position) and no ties of its own.
    """
    from sklearn.metrics import average_precision_score

    database = codes[split.database]
    position = np.arange(len(database)) / (len(database) + 1.0)
    aps = []
    for q in split.query[:queries]:
        relevant = relevance(data.labels[q : q + 1], data.labels[split.database])[0]
        if not relevant.any():
            aps.append(0.0)
            continue
        distance = hamming_distance(codes[q : q + 1], database)[0].astype(np.float64)
        aps.append(average_precision_score(relevant, -(distance + position)))
    return float(np.mean(aps))


def plot_pr_curves(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5))
    for row in rows:
        curve = row["pr_curve"]
        axes.plot([p["recall"] for p in curve], [p["precision"] for p in curve], marker=".", markersize=3,
                  label=f"{row['method']} {row['bits']} bits (mAP {row['map_all']:.3f})")
    axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def retrieval_grid(codes: np.ndarray, data: ImageSet, split: Split, path: Path, queries: int = 8, top: int = 10,
                   scale: int = 2, frame: int = 3) -> None:
    """Rows of a query and its ``top`` nearest database images, framed green when relevant and red when not."""
    from PIL import Image

    queries, top = min(queries, len(split.query)), min(top, len(split.database))  # a small folder has fewer
    size = data.images.shape[1] * scale
    cell = size + 2 * frame
    grid = Image.new("RGB", ((top + 1) * cell + 8, queries * cell), "white")
    rng = np.random.default_rng(0)
    for row, q in enumerate(rng.choice(split.query, queries, replace=False)):
        distance = hamming_distance(codes[q : q + 1], codes[split.database])[0]
        nearest = split.database[np.argsort(distance, kind="stable")[:top]]
        relevant = relevance(data.labels[q : q + 1], data.labels[nearest])[0]
        tiles = [(q, "black", 0)] + [(i, "green" if r else "red", 8) for i, r in zip(nearest, relevant, strict=True)]
        for column, (index, colour, gap) in enumerate(tiles):
            x, y = column * cell + gap, row * cell
            grid.paste(Image.new("RGB", (cell, cell), colour), (x, y))
            thumbnail = Image.fromarray(data.images[index]).resize((size, size), Image.Resampling.NEAREST)
            grid.paste(thumbnail, (x + frame, y + frame))
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")


class CodeLengthError(ValueError):
    """A checkpoint's codes have another length than the one asked for."""


def linear_accuracy(features: np.ndarray, data: ImageSet, split: Split, seed: int = 0) -> float:
    """Linear evaluation: a logistic-regression classifier fitted on the frozen features of the training
    images (with their labels), scored by its accuracy on the query images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if data.labels.ndim != 1:
        raise ValueError("linear evaluation needs single-label data")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    classifier.fit(features[split.train], data.labels[split.train])
    return float(classifier.score(features[split.query], data.labels[split.query]))


def feature_scores(features: np.ndarray, data: ImageSet, split: Split, linear: bool, seed: int) -> dict:
    """What a learned method's float features score without hashing: cosine mAP, and linear accuracy if asked."""
    ranked = cosine_map(features[split.query], features[split.database], data.labels[split.query],
                        data.labels[split.database])
    scores = {"float_map_all": ranked["map_all"], "float_map@1000": ranked["map@1000"]}
    if linear:
        scores["linear_accuracy"] = linear_accuracy(features, data, split, seed)
    return scores


def _method_codes(method: str, length: int, models: dict, features: dict, data: ImageSet, split: Split,
                  seed: int) -> np.ndarray:
    """Packed ``length``-bit codes of every image by ``method``: a checkpoint's own codes, ITQ on a feature
    method's embeddings (``features``), or a pixel baseline fitted on the training split."""
    if method in FEATURE_METHODS:
        return ITQ(length, seed=seed).fit(features[method][split.train]).encode(features[method])
    if method in METHODS:
        model, _ = models[method]
        if model.config.code_bits != length:
            raise CodeLengthError(f"its checkpoint has {model.config.code_bits}-bit codes")
        return encode_images(model, data.images, progress=True)
    return BASELINES[method](data, split, length, seed)



def training_record(sidecar: dict) -> dict:
    """How a checkpoint was trained, from its sidecar: command, epochs, time budget, the CPU threads it had and
    the legs before it (when it started from another model)."""
    training = sidecar.get("training", {})
    return {"command": sidecar.get("command"), "epochs": sidecar.get("epochs_completed"),
            "time_budget": training.get("time_budget"), "threads": sidecar.get("hardware", {}).get("cpu_threads"),
            "cpu": sidecar.get("hardware", {}).get("cpu"), "earlier_legs": sidecar.get("earlier_legs", [])}


def bench_map(out_dir: str | Path, protocol: str | None = None, dataset: str | None = None,
              data_root: str = CIFAR10_ROOT, bits: Sequence[int] = (128,),
              methods: Sequence[str] = ("nac", "lsh", "itq", "phash"), checkpoints: dict[str, str] | None = None,
              split_seed: int = 0, device: str = "auto", cross_check_queries: int = 500,
              float_features: bool = False, linear: bool = False) -> dict:
    """Score every method at every code length on one split; write the table, plots and cross-check.

    The protocol defaults to the dataset's (cifar10-nac for cifar10, flickr25k for flickr25k, folder for a
    folder). With ``float_features``, each learned method's row also scores its backbone features ranked by
    cosine (``float_map_all``, ``float_map@1000``); with ``linear``, their linear-evaluation accuracy.
    """
    _check_methods(methods)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    checkpoints = {"nac": str(default_checkpoint()), **(checkpoints or {})}
    torch_device = resolve_device(device)
    missing = [m for m in methods if m in METHODS and m not in checkpoints]
    if missing:
        raise ValueError(f"give a checkpoint for {', '.join(missing)}: --checkpoint {missing[0]}=PATH")
    models = {m: load_checkpoint(checkpoints[m], torch_device) for m in methods if m in METHODS}
    image_size = next(iter(models.values()))[0].config.image_size if models else 32
    dataset = dataset or "cifar10"
    scoring = load_scoring_data(dataset, data_root, protocol or default_protocol(dataset), split_seed, image_size)
    data, split, spec = scoring.data, scoring.split, scoring.protocol
    save_split(split, out_dir / "split.npz")
    read_features = [m for m in models if m in FEATURE_METHODS or float_features or linear]
    features = {m: embed_images(models[m][0], data.images, progress=True) for m in read_features}

    rows, skipped = [], []
    for method in methods:
        for length in sorted({baseline_bits(method, b) for b in bits}):
            try:
                codes = _method_codes(method, length, models, features, data, split, split_seed)
            except (NotEnoughDataError, CodeLengthError) as e:
                logger.warning("skipping %s at %d bits: %s", method, length, e)
                skipped.append({"method": method, "bits": length, "reason": str(e)})
                continue
            row = {"method": method, "bits": length, **score_codes(codes, data, split, spec.map_k)}
            if method in models and (float_features or linear):
                row.update(feature_scores(features[method], data, split, linear, split_seed))
            first = dataclasses.replace(split, query=split.query[:cross_check_queries])
            row["cross_check"] = {"ours": score_codes(codes, data, first, spec.map_k)["map_all"],
                                  "sklearn": sklearn_map(codes, data, split, cross_check_queries)}
            logger.info("%s %d bits: mAP@all %.4f", method, length, row["map_all"])
            rows.append(row)
            if method in methods[:1] and length == max(baseline_bits(method, b) for b in bits):
                retrieval_grid(codes, data, split, out_dir / "retrieval-grid.png")

    title = f"{data.description}, {spec.name}"
    plot_pr_curves(rows, out_dir / "pr-curves.png", title)
    results = {"dataset": data.description, "protocol": spec.name, "split_seed": split_seed, "split_file": "split.npz",
               "checkpoints": {m: portable(checkpoints[m]) for m in models},
               "training": {m: training_record(sidecar) for m, (_, sidecar) in models.items()},
               "retrieval_grid_method": methods[0],
               "cross_check": "scikit-learn average_precision_score on the first "
                              f"{min(cross_check_queries, len(split.query))} queries only, same ranking",
               "rows": rows, "skipped": skipped,
               "wall_time_s": round(time.perf_counter() - started, 1), **provenance(torch_device)}
    write_json(out_dir / "results.json", results)
    return results
