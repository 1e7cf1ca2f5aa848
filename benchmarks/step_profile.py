"""Training images/s on this machine for each precision and memory-format setting, in one run.

Usage: python benchmarks/step_profile.py [--arch cnn_small] [--batch-size 500] [--steps 20]
       [--settings fp32,fp32-cl,bf16,bf16-cl] [--compile] [--out results.json]

``--compile`` times each setting eager and then torch.compiled (the first compiled steps, which compile, fall
in the untimed warm-up).

Each step is timed in two parts, synchronising in between: the two augmented views, then the model's
forward, backward and optimizer step. Random uint8 images stand in for the data (the step's cost does not
depend on pixel values). Prints one JSON line per setting: ms per step, the augmentation's share and images/s
(each image yields two views); ``--out`` writes them all, with the machine, as one JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from nac_hash.atomic import write_json
from nac_hash.provenance import provenance
from nac_hash.training.config import TrainConfig
from nac_hash.training.objective import TrainStep
from nac_hash.training.train import build_run, optimize, resolve_device, two_views

SETTINGS = {  # name -> (precision, channels_last)
    "fp32": ("fp32", False),
    "fp32-cl": ("fp32", True),
    "bf16": ("bf16", False),
    "bf16-cl": ("bf16", True),
}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def profile(config: TrainConfig, steps: int, warmup: int = 3) -> dict:
    """Time ``steps`` training steps of ``config`` after ``warmup`` untimed ones."""
    device = resolve_device(config.device)
    run = build_run(config, device, steps_per_epoch=100)
    step_module = TrainStep(run.model, run.objective)
    if config.compile:
        step_module = torch.compile(step_module)
    images = torch.randint(0, 256, (config.batch_size, 3, config.image_size, config.image_size),
                           dtype=torch.uint8, device=device)
    augment_s = total_s = 0.0
    for step in range(warmup + steps):
        _synchronize(device)
        start = time.perf_counter()
        views = two_views(images, config, run.model.config)
        _synchronize(device)
        middle = time.perf_counter()
        optimize(run, step_module, *views)
        _synchronize(device)
        if step >= warmup:
            augment_s += middle - start
            total_s += time.perf_counter() - start
    return {
        "arch": config.arch, "method": config.method, "batch_size": config.batch_size,
        "precision": config.precision, "channels_last": config.channels_last, "compile": config.compile,
        "steps": steps, "ms_per_step": round(1000 * total_s / steps, 1),
        "augment_share": round(augment_s / total_s, 3),
        "images_per_s": round(config.batch_size * steps / total_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cnn_small", help="encoder (default: %(default)s)")
    parser.add_argument("--method", default="nac", help="training objective (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per step (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting (default: %(default)s)")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, from {', '.join(SETTINGS)} (default: all)")
    parser.add_argument("--compile", action="store_true",
                        help="time each setting twice: eager, then with the training step torch.compiled")
    parser.add_argument("--out", type=Path, help="write all results as one JSON file")
    args = parser.parse_args()
    base = TrainConfig(arch=args.arch, method=args.method, batch_size=args.batch_size)
    results = []
    for name in args.settings.split(","):
        if name not in SETTINGS:
            parser.error(f"--settings: unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
        precision, channels_last = SETTINGS[name]
        for compiled in (False, True) if args.compile else (False,):
            config = dataclasses.replace(base, precision=precision, channels_last=channels_last, compile=compiled)
            results.append({"setting": name, **profile(config, args.steps)})
            print(json.dumps(results[-1]), flush=True)
    if args.out:
        write_json(args.out, {"results": results, **provenance()})


if __name__ == "__main__":
    main()
