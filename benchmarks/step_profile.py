"""Training images/s on this machine for each precision, memory-format and allocator setting, in one run.

Usage: python benchmarks/step_profile.py [--arch cnn_small] [--batch-size 500] [--steps 20]
       [--settings fp32-cl-previous,fp32,fp32-cl,bf16,bf16-cl,fp32-cl+keep,bf16-cl+keep,...] [--compile]
       [--rounds 1 | --turns 40] [--out results.json]

A ``+keep`` setting keeps freed memory in the process as training does (nac_hash.training.allocator); the
others use glibc's default allocator. A ``+view24`` setting trains on 24-pixel views of the 32-pixel images
(TrainConfig.view_size). ``fp32-cl-previous`` is the training step as the throughput issue found
it: fp32, channels-last, cnn_small's previous layers (see :func:`previous_layers`) and the colour jitter
eager, not compiled; its augmentations are otherwise today's, which are cheaper than the issue's.
``issue-tree`` is that step exactly: the code of ISSUE_COMMIT, the commit the issue measured, extracted from
this repository's history and run by tree_step.py (``--turns`` only). Every setting runs in a fresh process,
so none inherits another's heap.

``--compile`` times each setting eager and then torch.compiled (the first compiled steps, which compile, fall
in the untimed warm-up).

Each step is timed in two parts, synchronising in between: the two augmented views, then the model's
forward, backward and optimizer step. Random uint8 images stand in for the data (the step's cost does not
depend on pixel values). Prints one JSON line per setting: ms per step, the augmentation's share, images/s
(each image yields two views) and the process's peak memory; ``--out`` writes them all, with the machine, as
one JSON file. ``--rounds 3`` times every setting three times, round after round, so that a slow spell of a
shared machine hits all settings alike, and reports each setting's median round. ``--turns 40`` instead keeps
every setting live in its own process and times them in 40 alternating turns (see :func:`time_in_turns`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

import torch

from nac_hash.atomic import write_json
from nac_hash.provenance import provenance
from nac_hash.training import augment
from nac_hash.training.allocator import keep_freed_memory
from nac_hash.training.config import TrainConfig
from nac_hash.training.objective import TrainStep
from nac_hash.training.train import build_run, optimize, resolve_device, two_views

REPO = Path(__file__).resolve().parents[1]
TREE_STEP = Path(__file__).with_name("tree_step.py")
ISSUE_COMMIT = "fe039cb"  # the last commit before work on the throughput issue began (2026-11-23 13:09)


class Setting(NamedTuple):
    precision: str
    channels_last: bool
    keep_memory: bool  # keep freed memory in the process, as training does
    previous_layers: bool  # cnn_small's layers as the throughput issue found them
    eager_jitter: bool = False  # the colour jitter not compiled, as the issue found it
    commit: str | None = None  # not today's code: this commit's, run by tree_step.py
    view_size: int | None = None  # training views smaller than the 32-pixel images (TrainConfig.view_size)


SETTINGS = {
    "issue-tree": Setting("fp32", True, False, True, eager_jitter=True, commit=ISSUE_COMMIT),
    "fp32-cl-previous": Setting("fp32", True, False, True, eager_jitter=True),
    "fp32": Setting("fp32", False, False, False),
    "fp32-cl": Setting("fp32", True, False, False),
    "bf16": Setting("bf16", False, False, False),
    "bf16-cl": Setting("bf16", True, False, False),
    "fp32-cl+keep": Setting("fp32", True, True, False),
    "bf16-cl+keep": Setting("bf16", True, True, False),
    "bf16-cl+keep-eager-jitter": Setting("bf16", True, True, False, eager_jitter=True),
    "fp32-cl+keep+view24": Setting("fp32", True, True, False, view_size=24),
    "bf16-cl+keep+view24": Setting("bf16", True, True, False, view_size=24),
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


class StepTimer:
    """One setting's training step, built once and timed on demand (random uint8 images stand in for data)."""

    def __init__(self, config: TrainConfig, setting: Setting) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if setting.keep_memory:
            keep_freed_memory()
        self.run = build_run(config, self.device, steps_per_epoch=100)
        if setting.previous_layers:
            self.run.model.backbone = previous_layers(self.run.model.backbone)
        if setting.eager_jitter:  # for this setting's process only
            for adjust in augment.COLOUR_ADJUSTMENTS:
                adjust.compiled = None
        self.step = TrainStep(self.run.model, self.run.objective)
        if config.compile:
            self.step = torch.compile(self.step)
        self.images = torch.randint(0, 256, (config.batch_size, 3, config.image_size, config.image_size),
                                    dtype=torch.uint8, device=self.device)

    def time(self, steps: int) -> tuple[float, float]:
        """Seconds spent on ``steps`` steps: augmenting the two views, and in all."""
        augment_s = total_s = 0.0
        for _ in range(steps):
            _synchronize(self.device)
            start = time.perf_counter()
            views = two_views(self.images, self.config, self.run.model.config)
            _synchronize(self.device)
            middle = time.perf_counter()
            optimize(self.run, self.step, *views)
            _synchronize(self.device)
            augment_s += middle - start
            total_s += time.perf_counter() - start
        return augment_s, total_s


def profile(config: TrainConfig, steps: int, setting: Setting, warmup: int = 3) -> dict:
    """Time ``steps`` training steps of ``config`` after ``warmup`` untimed ones."""
    timer = StepTimer(config, setting)
    timer.time(warmup)
    augment_s, total_s = timer.time(steps)
    return {
        "arch": config.arch, "method": config.method, "batch_size": config.batch_size,
        "precision": config.precision, "channels_last": config.channels_last, "keep_freed_memory": setting.keep_memory,
        "previous_layers": setting.previous_layers, "eager_jitter": setting.eager_jitter, "compile": config.compile,
        "view_size": config.view_size,
        "steps": steps, "ms_per_step": round(1000 * total_s / steps, 1),
        "augment_share": round(augment_s / total_s, 3),
        "images_per_s": round(config.batch_size * steps / total_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # of this fresh process
    }


def profile_in_fresh_process(config: TrainConfig, steps: int, setting: Setting) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(profile, config, steps, setting).result()


def median_round(timed: list[dict]) -> dict:
    """The round with the median images/s, with every round's images/s beside it."""
    ranked = sorted(timed, key=lambda result: result["images_per_s"])
    return {**ranked[(len(ranked) - 1) // 2], "images_per_s_each_round": [r["images_per_s"] for r in timed]}


def setting_config(base: TrainConfig, name: str, compiled: bool = False) -> TrainConfig:
    setting = SETTINGS[name]
    return dataclasses.replace(base, precision=setting.precision, channels_last=setting.channels_last,
                               compile=compiled, view_size=setting.view_size or base.image_size)


def time_in_rounds(base: TrainConfig, names: list[str], steps: int, rounds: int, compile_too: bool) -> dict:
    """Each setting (eager, and compiled if ``compile_too``) once per round in a fresh process; median rounds."""
    runs = [(name, compiled) for name in names for compiled in ((False, True) if compile_too else (False,))]
    timed: dict[tuple[str, bool], list[dict]] = {run: [] for run in runs}
    for _ in range(rounds):
        for name, compiled in runs:
            timed[name, compiled].append({"setting": name, **profile_in_fresh_process(
                setting_config(base, name, compiled), steps, SETTINGS[name])})
            print(json.dumps(timed[name, compiled][-1]), flush=True)
    return {"results": [median_round(each) for each in timed.values()]}


def _serve_steps(conn: Connection, config: TrainConfig, setting: Setting) -> None:
    """A live setting: build its step once, then answer each number of steps sent with the seconds they took."""
    timer = StepTimer(config, setting)
    while True:
        conn.send(timer.time(conn.recv())[1])


class ProcessStep:
    """A live setting of today's code, served by :func:`_serve_steps` in a spawned process."""

    def __init__(self, config: TrainConfig, setting: Setting) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_serve_steps, daemon=True, args=(theirs, config, setting))
        self.process.start()

    def send(self, steps: int) -> None:
        self.conn.send(steps)

    def recv(self) -> float:
        return self.conn.recv()

    def terminate(self) -> None:
        self.process.terminate()


class TreeStep:
    """A live setting served by tree_step.py, in a process whose code is that of an extracted commit."""

    def __init__(self, tree: Path, config: TrainConfig) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(TREE_STEP), config.arch, config.method, str(config.batch_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(tree)})

    def send(self, steps: int) -> None:
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()

    def recv(self) -> float:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{TREE_STEP.name} exited with status {self.process.wait()}")
        return float(line)

    def terminate(self) -> None:
        self.process.terminate()


@contextlib.contextmanager
def extracted(commit: str) -> Iterator[Path]:
    """The ``nac_hash`` and ``training`` folders of ``commit``, from this repository's history, in a temporary
    folder that is removed afterwards."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "nac_hash", "training"],
                             capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"step_profile.py: cannot read commit {commit} from the repository's history "
                         f"(a shallow clone?): {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory() as tree:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tree, filter="data")
        yield Path(tree)


def live_setting(base: TrainConfig, name: str, trees: contextlib.ExitStack) -> ProcessStep | TreeStep:
    setting = SETTINGS[name]
    if setting.commit is None:
        return ProcessStep(setting_config(base, name), setting)
    return TreeStep(trees.enter_context(extracted(setting.commit)), base)


def time_in_turns(base: TrainConfig, names: list[str], steps: int, turns: int, warmup: int = 3) -> dict:
    """Every setting kept live in its own process and timed for ``steps`` steps per turn, the settings one after
    the other within a turn, their order rotating each turn. Each turn's ratios to the first setting compare
    steps timed seconds apart, so the machine's drift over minutes, which a round of fresh processes spans,
    hardly enters them."""
    rates: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as trees:
        live = {name: live_setting(base, name, trees) for name in names}
        try:
            for setting in live.values():
                setting.send(warmup)
            for setting in live.values():
                setting.recv()
            for turn in range(turns):
                for name in names[turn % len(names):] + names[:turn % len(names)]:
                    live[name].send(steps)
                    rates[name].append(round(base.batch_size * steps / live[name].recv(), 1))
                print(json.dumps({name: each[-1] for name, each in rates.items()}), flush=True)
        finally:
            for setting in live.values():
                setting.terminate()
    ratios = {name: [round(r / first, 3) for r, first in zip(rates[name], rates[names[0]], strict=True)]
              for name in names[1:]}
    return {
        "arch": base.arch, "method": base.method, "batch_size": base.batch_size, "steps_per_turn": steps,
        "turns": turns, "settings": names,
        "commits": {name: SETTINGS[name].commit for name in names if SETTINGS[name].commit},
        "images_per_s_each_turn": rates,
        "median_images_per_s": {name: round(statistics.median(each), 1) for name, each in rates.items()},
        f"ratio_to_{names[0]}_each_turn": ratios,
        f"ratio_to_{names[0]}": {name: {"median": round(statistics.median(each), 3), "quartiles": [
            round(q, 3) for q in statistics.quantiles(each, n=4)]} for name, each in ratios.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cnn_small", help="encoder (default: %(default)s)")
    parser.add_argument("--method", default="nac", help="training objective (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per step (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20,
                        help="timed steps per setting, per round or per turn (default: %(default)s)")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, from {', '.join(SETTINGS)} (default: all)")
    parser.add_argument("--compile", action="store_true",
                        help="time each setting twice: eager, then with the training step torch.compiled")
    parser.add_argument("--rounds", type=int, default=1, help="times each setting is timed (default: %(default)s)")
    parser.add_argument("--turns", type=int,
                        help="time the settings in this many alternating turns, each kept live in its own process, "
                             "and report each one's images/s ratio to the first setting")
    parser.add_argument("--out", type=Path, help="write all results as one JSON file")
    args = parser.parse_args()
    names = args.settings.split(",")
    if unknown := [name for name in names if name not in SETTINGS]:
        parser.error(f"--settings: unknown setting {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    if args.arch != "cnn_small" and any(SETTINGS[name].previous_layers for name in names):
        parser.error("--settings: fp32-cl-previous times cnn_small's previous layers; use it with --arch cnn_small")
    if args.turns is not None and (args.turns < 2 or len(names) < 2 or args.compile):
        parser.error("--turns: give at least 2 turns and 2 settings, without --compile")
    if args.turns is None and any(SETTINGS[name].commit for name in names):
        parser.error("--settings: issue-tree runs another commit's code and is timed with --turns only")
    base = TrainConfig(arch=args.arch, method=args.method, batch_size=args.batch_size)
    if args.turns is None:
        results = time_in_rounds(base, names, args.steps, args.rounds, args.compile)
    else:
        results = time_in_turns(base, names, args.steps, args.turns)
    if args.out:
        write_json(args.out, {**results, **provenance()})


if __name__ == "__main__":
    main()
