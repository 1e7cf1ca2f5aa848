"""Training images/s on this machine for each precision, memory-format and allocator setting, in one run.

Usage: python benchmarks/step_profile.py [--arch cnn_small] [--batch-size 500] [--steps 20]
       [--settings fp32-cl-previous,fp32,fp32-cl,bf16,bf16-cl,fp32-cl+keep,bf16-cl+keep] [--compile]
       [--rounds 1] [--out results.json]

A ``+keep`` setting keeps freed memory in the process as training does (nac_hash.training.allocator); the
others use glibc's default allocator. ``fp32-cl-previous`` is the training step as the throughput issue found
it: fp32, channels-last, and cnn_small's previous layers (see :func:`previous_layers`). Every setting runs
in a fresh process, so none inherits another's heap.

``--compile`` times each setting eager and then torch.compiled (the first compiled steps, which compile, fall
in the untimed warm-up).

Each step is timed in two parts, synchronising in between: the two augmented views, then the model's
forward, backward and optimizer step. Random uint8 images stand in for the data (the step's cost does not
depend on pixel values). Prints one JSON line per setting: ms per step, the augmentation's share, images/s
(each image yields two views) and the process's peak memory; ``--out`` writes them all, with the machine, as
one JSON file. ``--rounds 3`` times every setting three times, round after round, so that a slow spell of a
shared machine hits all settings alike, and reports each setting's median round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch

from nac_hash.atomic import write_json
from nac_hash.provenance import provenance
from nac_hash.training.allocator import keep_freed_memory
from nac_hash.training.config import TrainConfig
from nac_hash.training.objective import TrainStep
from nac_hash.training.train import build_run, optimize, resolve_device, two_views


class Setting(NamedTuple):
    precision: str
    channels_last: bool
    keep_memory: bool  # keep freed memory in the process, as training does
    previous_layers: bool  # cnn_small's layers as the throughput issue found them


SETTINGS = {
    "fp32-cl-previous": Setting("fp32", True, False, True),
    "fp32": Setting("fp32", False, False, False),
    "fp32-cl": Setting("fp32", True, False, False),
    "bf16": Setting("bf16", False, False, False),
    "bf16-cl": Setting("bf16", True, False, False),
    "fp32-cl+keep": Setting("fp32", True, True, False),
    "bf16-cl+keep": Setting("bf16", True, True, False),
}


def previous_layers(backbone: torch.nn.Sequential) -> torch.nn.Sequential:
    """cnn_small as the throughput issue found it (the same modules, so the same weights): each ReLU before its
    max-pool, and ``AdaptiveAvgPool2d(1)`` plus ``Flatten`` in place of ``GlobalAvgPool``."""
    layers = list(backbone)
    for i in [i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.MaxPool2d)]:
        layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return torch.nn.Sequential(*layers[:-1], torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def profile(config: TrainConfig, steps: int, keep_memory: bool, previous: bool = False, warmup: int = 3) -> dict:
    """Time ``steps`` training steps of ``config`` after ``warmup`` untimed ones."""
    device = resolve_device(config.device)
    if keep_memory:
        keep_freed_memory()
    run = build_run(config, device, steps_per_epoch=100)
    if previous:
        run.model.backbone = previous_layers(run.model.backbone)
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
        "precision": config.precision, "channels_last": config.channels_last, "keep_freed_memory": keep_memory,
        "previous_layers": previous, "compile": config.compile,
        "steps": steps, "ms_per_step": round(1000 * total_s / steps, 1),
        "augment_share": round(augment_s / total_s, 3),
        "images_per_s": round(config.batch_size * steps / total_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # of this fresh process
    }


def profile_in_fresh_process(config: TrainConfig, steps: int, keep_memory: bool, previous: bool) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(profile, config, steps, keep_memory, previous).result()


def median_round(timed: list[dict]) -> dict:
    """The round with the median images/s, with every round's images/s beside it."""
    ranked = sorted(timed, key=lambda result: result["images_per_s"])
    return {**ranked[(len(ranked) - 1) // 2], "images_per_s_each_round": [r["images_per_s"] for r in timed]}


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
    parser.add_argument("--rounds", type=int, default=1, help="times each setting is timed (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write all results as one JSON file")
    args = parser.parse_args()
    names = args.settings.split(",")
    if unknown := [name for name in names if name not in SETTINGS]:
        parser.error(f"--settings: unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    if args.arch != "cnn_small" and any(SETTINGS[name].previous_layers for name in names):
        parser.error("--settings: fp32-cl-previous times cnn_small's previous layers; use it with --arch cnn_small")
    base = TrainConfig(arch=args.arch, method=args.method, batch_size=args.batch_size)
    runs = [(name, compiled) for name in names for compiled in ((False, True) if args.compile else (False,))]
    rounds: dict[tuple[str, bool], list[dict]] = {run: [] for run in runs}
    for _ in range(args.rounds):
        for name, compiled in runs:
            setting = SETTINGS[name]
            config = dataclasses.replace(base, precision=setting.precision, channels_last=setting.channels_last,
                                         compile=compiled)
            rounds[name, compiled].append({"setting": name, **profile_in_fresh_process(
                config, args.steps, setting.keep_memory, setting.previous_layers)})
            print(json.dumps(rounds[name, compiled][-1]), flush=True)
    results = [median_round(timed) for timed in rounds.values()]
    if args.out:
        write_json(args.out, {"results": results, **provenance()})


if __name__ == "__main__":
    main()
