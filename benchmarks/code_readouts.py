"""mAP of one trained model's codes read out four ways, beside ITQ on the pixels, on one labelled split.

Usage: python benchmarks/code_readouts.py CHECKPOINT [CHECKPOINT ...] [--dataset folder] [--data-root DIR]
       [--protocol folder] [--out results.json]

The readouts: the signs of the pre-activations (what `nac-hash train` ships), and ITQ (128 bits, fitted on the
split's training images) on the pre-activations, on the backbone features h, and on h scaled to unit length
(`nac-hash export --itq logits` and `--itq features` store the first and the last in the model). One JSON line
per checkpoint: the protocol's mAP (`map`: mAP@1000 for cifar10-i and -ii, else mAP@all), mAP@all and distinct
database codes per readout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nac_hash.atomic import write_json
from nac_hash.baselines import ITQ
from nac_hash.checkpoint import load_checkpoint
from nac_hash.codes import pack_codes
from nac_hash.inference import code_logits, embed_images
from nac_hash.models import HashingModel
from nac_hash.provenance import provenance
from nac_hash.training.scoring import ScoringData, itq_codes, load_scoring_data, score_codes


def readouts(model: HashingModel, scoring: ScoringData) -> dict[str, np.ndarray]:
    """Packed codes of every image of ``scoring`` under each readout."""
    images = scoring.data.images
    logits = code_logits(model, images)
    features = embed_images(model, images)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-12)
    train = scoring.split.train
    codes = {"signs": pack_codes(torch.from_numpy(logits))}
    for name, inputs in (("itq_logits", logits), ("itq_features", features), ("itq_unit_features", unit)):
        codes[name] = ITQ(model.config.bits).fit(inputs[train]).encode(inputs)
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--dataset", default="folder")
    parser.add_argument("--data-root", default="data/digits-folder")
    parser.add_argument("--protocol", default="folder")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    models = {path: load_checkpoint(path, torch.device("cpu"))[0] for path in args.checkpoints}
    bits, image_size = models[args.checkpoints[0]].config.bits, models[args.checkpoints[0]].config.image_size
    scoring = load_scoring_data(args.dataset, args.data_root, args.protocol, 0, image_size)

    def scored(codes: np.ndarray) -> dict:
        scores = score_codes(codes, scoring.data, scoring.split, scoring.protocol.map_k)
        return {"map": round(scores["map"], 4), "map_all": round(scores["map_all"], 4),
                "distinct_codes": scores["distinct_codes"]}

    rows = []
    for checkpoint, model in models.items():
        rows.append({"checkpoint": checkpoint,
                     **{name: scored(codes) for name, codes in readouts(model, scoring).items()}})
        print(json.dumps(rows[-1]), flush=True)
    pixels = scored(itq_codes(scoring.data, scoring.split, bits, 0))
    print(json.dumps({"itq_on_pixels": pixels}))
    if args.out:
        write_json(args.out, {"benchmark": "code readouts", "dataset": scoring.data.description,
                              "protocol": args.protocol, "split_seed": 0, "rows": rows, "itq_on_pixels": pixels,
                              **provenance()})


if __name__ == "__main__":
    main()
