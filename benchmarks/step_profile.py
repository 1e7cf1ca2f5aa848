"""Time one training step, split into augmentation and model+optimizer (synchronising in between).

Usage: python benchmarks/step_profile.py [--arch vgg16_bn] [--batch-size 1000] [--steps 50] [--compile]

Random uint8 images stand in for the data (the step's cost does not depend on pixel values).
Prints one JSON line: ms per step, the augmentation share, and images/s (each image yields two views).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from nac_hash.provenance import hardware
from training.config import TrainConfig
from training.train import build_run, optimize, resolve_device, two_views


def profile(config: TrainConfig, steps: int, warmup: int = 10) -> dict:
    device = resolve_device(config.device)
    run = build_run(config, device, steps_per_epoch=100)
    model = torch.compile(run.model) if config.compile else run.model
    images = torch.randint(0, 256, (config.batch_size, 3, config.image_size, config.image_size),
                           dtype=torch.uint8, device=device)
    augment_s = total_s = 0.0
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        views = two_views(images, config)
        if device.type == "cuda":
            torch.cuda.synchronize()
        middle = time.perf_counter()
        optimize(run, model, *views)
        if device.type == "cuda":
            torch.cuda.synchronize()
        end = time.perf_counter()
        if step >= warmup:
            augment_s += middle - start
            total_s += end - start
    return {
        "arch": config.arch, "method": config.method, "batch_size": config.batch_size,
        "compile": config.compile, "steps": steps, "ms_per_step": 1000 * total_s / steps,
        "augment_share": augment_s / total_s, "images_per_s": config.batch_size * steps / total_s,
        "hardware": hardware(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg16_bn")
    parser.add_argument("--method", default="nac")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    config = TrainConfig(arch=args.arch, method=args.method, batch_size=args.batch_size, compile=args.compile)
    print(json.dumps(profile(config, args.steps)))


if __name__ == "__main__":
    main()
