"""Training under torchrun: 2 CPU processes (gloo) give the single-process gradient of the global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import REPO
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nac_hash.checkpoint import load_checkpoint
from nac_hash.models import HashingModel
from nac_hash.training.config import load_config
from nac_hash.training.distributed import World, local_slice, wrap
from nac_hash.training.methods import FEATURE_METHODS
from nac_hash.training.objective import Objective, TrainStep

BATCH = 8


def step_gradients(method: str, world: World) -> tuple[dict[str, torch.Tensor], float]:
    """Gradients and loss of one step on this rank's share of a fixed global batch.

    Batch-norm is frozen (eval mode): with batch statistics, each rank would normalise its half of the batch
    on its own, which is the one intended difference from a single process on CPUs.
    """
    torch.manual_seed(0)
    config = load_config(None, {"method": method, "arch": "cnn_small", "bits": 16, "dataset": "folder",
                                "queue_size": 32})
    step = TrainStep(HashingModel(config.model_config()), None)
    step.objective = Objective(config, step.model)
    step.eval()
    wrapped = wrap(step, world, torch.device("cpu"), find_unused_parameters=method in FEATURE_METHODS)
    images = torch.randn(BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rows = local_slice(world, BATCH)
    torch.manual_seed(1)  # the same flip masks on every rank and in the single-process run
    loss = wrapped(images[rows], images.flip(3)[rows])
    loss.backward()
    return {n: p.grad.clone() for n, p in step.named_parameters() if p.grad is not None}, loss.item()


def _rank(rank: int, method: str, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        grads, loss = step_gradients(method, World(rank, 2, rank))
        if rank == 0:
            save_file(grads, out, metadata={"loss": str(loss)})
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["nac", "nac_mq", "simclr", "dim"])
def test_two_processes_give_the_global_batch_gradient(method, tmp_path):
    out = tmp_path / "grads.safetensors"
    mp.spawn(_rank, args=(method, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    distributed = load_file(out)
    with safe_open(str(out), framework="pt") as f:
        distributed_loss = float(f.metadata()["loss"])
    single, single_loss = step_gradients(method, World())
    assert distributed_loss == pytest.approx(single_loss, rel=1e-5)
    assert distributed.keys() == single.keys() and len(single) > 10
    for name in single:
        assert torch.allclose(distributed[name], single[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.slow
def test_torchrun_trains_and_rank_zero_writes_the_checkpoint(class_folders, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "nac_hash.cli", "train", "--dataset", "folder", "--data-root", str(class_folders),
               "--queries", "4", "--train-images", "8", "--arch", "cnn_small", "--bits", "16", "--epochs", "2",
               "--warmup-epochs", "1", "--batch-size", "12", "--device", "cpu", "--out-dir", str(out),
               "--method", "nac_mq", "--queue-size", "48", "--no-resume"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    model, sidecar = load_checkpoint(out / "model.safetensors")
    assert sidecar["epochs_completed"] == 2 and len(sidecar["history"]) == 1
    assert (out / "train_state.safetensors").is_file() and (out / "split.npz").is_file()
    assert json.loads((out / "model.json").read_text())["method"] == "nac_mq"
    assert model.config.bits == 16


def test_batch_must_split_evenly():
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        local_slice(World(0, 3, 0), 8)
    assert local_slice(World(1, 2, 1), 8) == slice(4, 8)
