"""What averaging each image's pre-activations over several views buys in mAP@all, and what it costs.

Usage: python benchmarks/view_averaging.py [--checkpoint PATH] [--dataset cifar10] [--data-root DIR]
       [--protocol cifar10-nac] [--out results.json]

Test-time augmentation for hashing: the code of an image becomes the sign of the mean pre-activations of the
image, its mirror, and copies shifted by one pixel diagonally (edges repeated) with their mirrors. Scored
(split seed 0) for 1, 2, 4, 6, 8 and 10 views, with the seconds one view takes to encode every image. Every
view is one more forward pass for the indexer and for each query.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nac_hash.atomic import write_json
from nac_hash.checkpoint import default_checkpoint, load_checkpoint
from nac_hash.codes import pack_codes
from nac_hash.inference import code_logits
from nac_hash.provenance import provenance
from nac_hash.training.config import CIFAR10_ROOT
from nac_hash.training.scoring import load_scoring_data, score_codes

SHIFTS = ((0, 0), (1, 1), (-1, -1), (1, -1), (-1, 1))


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, S, S, 3) images whose pixel (i, j) is the source's (i + dy, j + dx), edges repeated past the border."""
    size = images.shape[1]
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[:, 1 + dy : 1 + dy + size, 1 + dx : 1 + dx + size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(default_checkpoint()))
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-root", default=CIFAR10_ROOT)
    parser.add_argument("--protocol", default="cifar10-nac")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model, _ = load_checkpoint(args.checkpoint, torch.device("cpu"))
    scoring = load_scoring_data(args.dataset, args.data_root, args.protocol, 0, model.config.image_size)
    images = scoring.data.images
    total = np.zeros((len(images), model.config.bits), dtype=np.float32)
    rows, seconds = [], []
    for dy, dx in SHIFTS:
        moved = shifted(images, dy, dx)
        for view in (moved, np.ascontiguousarray(moved[:, :, ::-1])):
            start = time.perf_counter()
            total += code_logits(model, view)
            seconds.append(time.perf_counter() - start)
            if len(seconds) in (1, 2, 4, 6, 8, 10):
                scores = score_codes(pack_codes(torch.from_numpy(total)), scoring.data, scoring.split, None)
                rows.append({"views": len(seconds), "map_all": round(scores["map_all"], 4),
                             "map@1000": round(scores["map@1000"], 4), "distinct_codes": scores["distinct_codes"]})
                print(json.dumps(rows[-1]), flush=True)
    result = {"benchmark": "test-time view averaging", "checkpoint": args.checkpoint,
              "dataset": scoring.data.description, "protocol": args.protocol, "split_seed": 0, "rows": rows,
              "images": len(images), "seconds_per_view": round(float(np.median(seconds)), 2), **provenance()}
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
