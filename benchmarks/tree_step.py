"""Time the training step of an older commit of this repository, for step_profile.py's ``issue-tree`` setting.

Usage: PYTHONPATH=TREE python benchmarks/tree_step.py ARCH METHOD BATCH_SIZE

TREE holds the ``nac_hash`` and ``training`` folders of a commit from before the layering change (training was
then a top-level package and ``two_views`` took no model config), as step_profile.py extracts them. That
tree's ``nac_hash`` comes first on the path, so nothing of today's code runs in this process. The step is
built once with the commit's defaults for ARCH, METHOD and BATCH_SIZE; then each line read from stdin, a
number of steps, is answered on stdout with the seconds they took (random uint8 images, as in step_profile).
"""

from __future__ import annotations

import sys
import time

import torch

from training.config import TrainConfig
from training.objective import TrainStep
from training.train import build_run, optimize, two_views


def main() -> None:
    arch, method, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = TrainConfig(arch=arch, method=method, batch_size=batch_size)
    run = build_run(config, torch.device("cpu"), steps_per_epoch=100)
    step = TrainStep(run.model, run.objective)
    images = torch.randint(0, 256, (batch_size, 3, config.image_size, config.image_size), dtype=torch.uint8)
    for line in sys.stdin:
        start = time.perf_counter()
        for _ in range(int(line)):
            optimize(run, step, *two_views(images, config))
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    main()
