"""``nac-hash eval``: score a checkpoint on a benchmark protocol and write a results JSON.

The protocol, dataset and split seed default to the ones recorded in the checkpoint, so evaluating a
checkpoint without options re-scores it on the split it was trained for. Baselines named in ``baselines``
are scored on the same split in the same file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from nac_hash.atomic import write_json
from nac_hash.baselines import RandomHyperplaneLSH
from nac_hash.checkpoint import load_checkpoint
from nac_hash.inference import encode_images
from nac_hash.metrics import RetrievalMetrics, evaluate_retrieval
from nac_hash.provenance import provenance
from training.config import TrainConfig
from training.datasets import ImageSet, load_dataset
from training.splits import Split, get_protocol, make_split, save_split
from training.train import resolve_device

logger = logging.getLogger(__name__)

BASELINES = ("lsh",)


def _summary(metrics: RetrievalMetrics, map_k: int | None) -> dict:
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
    return _summary(metrics, map_k)


def pixel_features(data: ImageSet) -> np.ndarray:
    """(N, S * S * 3) float32 pixels in [0, 1]: the features of the pixel baselines."""
    return data.images.reshape(len(data.images), -1).astype(np.float32) / 255.0


def lsh_codes(data: ImageSet, split: Split, bits: int, seed: int) -> np.ndarray:
    """Random-hyperplane LSH on raw pixels, centred on the training split."""
    pixels = pixel_features(data)
    return RandomHyperplaneLSH(bits, seed).fit(pixels[split.train]).encode(pixels)


def evaluate(checkpoint: str | Path, out: str | Path, protocol: str | None = None, dataset: str | None = None,
             data_root: str | None = None, split_seed: int | None = None, baselines: tuple[str, ...] = (),
             device: str = "auto", batch_size: int = 500) -> dict:
    """Score ``checkpoint`` (and ``baselines``) on a protocol; write the results JSON and split to ``out``."""
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    started = time.perf_counter()
    torch_device = resolve_device(device)
    model, sidecar = load_checkpoint(checkpoint, torch_device)
    trained = sidecar.get("training", {})
    defaults = TrainConfig()
    protocol_spec = get_protocol(protocol or sidecar.get("protocol", defaults.protocol))
    seed = split_seed if split_seed is not None else sidecar.get("split_seed", defaults.split_seed)
    data = load_dataset(dataset or sidecar.get("dataset", protocol_spec.dataset),
                        data_root or defaults.data_root, model.config.image_size)
    split = make_split(protocol_spec, data.labels, data.is_test, seed, trained.get("queries"),
                       trained.get("train_images"))
    out = Path(out)
    split_path = out.with_name(out.stem + ".split.npz")
    save_split(split, split_path)

    methods = {}
    codes = encode_images(model, data.images, batch_size=batch_size, progress=True)
    methods[sidecar.get("method", "nac")] = score_codes(codes, data, split, protocol_spec.map_k)
    for name in baselines:
        methods[name] = score_codes(lsh_codes(data, split, model.config.bits, seed), data, split,
                                    protocol_spec.map_k)
    results = {
        "dataset": data.description,
        "protocol": protocol_spec.name,
        "metric": f"mAP@{protocol_spec.map_k}" if protocol_spec.map_k else "mAP@all",
        "split_seed": seed,
        "split_file": split_path.name,
        "bits": model.config.bits,
        "checkpoint": {"path": str(checkpoint), "weights_sha256": sidecar["weights_sha256"],
                       "model": model.config.to_dict(), "training_command": sidecar.get("command"),
                       "epochs_completed": sidecar.get("epochs_completed")},
        "skipped_files": len(data.skipped),
        "methods": methods,
        "wall_time_s": round(time.perf_counter() - started, 1),
        **provenance(torch_device),
    }
    write_json(out, results)
    for name, scores in methods.items():
        logger.info("%s: %s %.4f, tie-aware mAP %.4f, %d distinct codes", name, results["metric"],
                    scores["map"], scores["tie_aware_map"], scores["distinct_codes"])
    return results

