"""``nac-hash eval``: score a checkpoint on a benchmark protocol and write a results JSON.

The protocol, dataset and split seed default to the ones recorded in the checkpoint, so evaluating a
checkpoint without options re-scores it on the split it was trained for. Baselines named in ``baselines``
are scored on the same split in the same file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from nac_hash.atomic import write_json
from nac_hash.baselines import NotEnoughDataError
from nac_hash.checkpoint import load_checkpoint
from nac_hash.inference import encode_images
from nac_hash.provenance import portable, provenance
from nac_hash.training.config import CIFAR10_ROOT
from nac_hash.training.scoring import check_baselines, load_scoring_data, score_baseline, score_codes
from nac_hash.training.splits import default_protocol, save_split
from nac_hash.training.train import resolve_device

logger = logging.getLogger(__name__)


def _recorded_data(sidecar: dict, dataset: str | None, protocol: str | None) -> dict:
    """What the checkpoint records of its data and split, for the fields the options leave open.

    Only the dataset is kept when the options name another dataset or protocol: the recorded folder and split
    sizes belong to the recorded data.
    """
    recorded = {"dataset": "cifar10", **sidecar.get("training", {}), **sidecar}
    recorded = {k: recorded.get(k) for k in ("dataset", "data_root", "protocol", "split_seed", "queries",
                                               "train_images") if recorded.get(k) is not None}
    if (dataset or recorded["dataset"]) != recorded["dataset"] or (protocol or recorded.get("protocol")) != \
            recorded.get("protocol"):
        return {"dataset": recorded["dataset"], "split_seed": recorded.get("split_seed", 0)}
    return recorded


def evaluate(checkpoint: str | Path, out: str | Path, protocol: str | None = None, dataset: str | None = None,
             data_root: str | None = None, split_seed: int | None = None, baselines: tuple[str, ...] = (),
             device: str = "auto", batch_size: int = 500) -> dict:
    """Score ``checkpoint`` (and ``baselines``) on a protocol; write the results JSON and split to ``out``.

    Dataset, data folder, protocol, split seed and split sizes default to those the checkpoint was trained
    with (for the packaged model: CIFAR-10 in data/CIFAR-10-images, cifar10-nac, seed 0).
    """
    check_baselines(baselines)
    started = time.perf_counter()
    torch_device = resolve_device(device)
    model, sidecar = load_checkpoint(checkpoint, torch_device)
    recorded = _recorded_data(sidecar, dataset, protocol)
    dataset = dataset or recorded["dataset"]
    seed = split_seed if split_seed is not None else recorded.get("split_seed", 0)
    scoring = load_scoring_data(dataset, data_root or recorded.get("data_root", CIFAR10_ROOT),
                                protocol or recorded.get("protocol") or default_protocol(dataset), seed,
                                model.config.image_size, recorded.get("queries"), recorded.get("train_images"))
    out = Path(out)
    split_path = out.with_name(out.stem + ".split.npz")
    save_split(scoring.split, split_path)

    codes = encode_images(model, scoring.data.images, batch_size=batch_size, progress=True)
    methods = {sidecar.get("method", "nac"): score_codes(codes, scoring.data, scoring.split,
                                                         scoring.protocol.map_k)}
    skipped_baselines = {}
    for name in baselines:
        try:
            methods[name] = score_baseline(name, scoring, model.config.code_bits, seed)
        except NotEnoughDataError as e:  # the other methods' scores still count
            logger.warning("skipping the %s baseline: %s", name, e)
            skipped_baselines[name] = str(e)
    results = {
        "dataset": scoring.data.description,
        "protocol": scoring.protocol.name,
        "metric": scoring.metric,
        "split_seed": seed,
        "split_file": split_path.name,
        "bits": model.config.code_bits,
        "checkpoint": {"path": portable(checkpoint), "weights_sha256": sidecar["weights_sha256"],
                       "model": model.config.to_dict(), "training_command": sidecar.get("command"),
                       "epochs_completed": sidecar.get("epochs_completed")},
        "skipped_files": len(scoring.data.skipped),
        "methods": methods,
        "skipped_baselines": skipped_baselines,
        "wall_time_s": round(time.perf_counter() - started, 1),
        **provenance(torch_device),
    }
    write_json(out, results)
    for name, scores in methods.items():
        logger.info("%s: %s %.4f, tie-aware mAP %.4f, %d distinct codes", name, results["metric"],
                    scores["map"], scores["tie_aware_map"], scores["distinct_codes"])
    return results
