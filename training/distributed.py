"""Training on several processes with torchrun and DistributedDataParallel.

Under ``torchrun --nproc_per_node N`` every rank holds the whole training set, draws the same permutation each
epoch and trains on its own slice of every global batch (``--batch-size`` stays the global batch). The losses
see the whole global batch: codes are gathered from all ranks with a differentiable all-gather, every rank
computes the global loss, and DDP's gradient averaging then gives exactly the gradient of that loss.
Batch-norm never sees an image's two views together (each view has its own forward pass); on GPUs it is
synchronised across ranks (SyncBatchNorm), on CPUs (gloo) each rank keeps its own statistics.
Only rank 0 writes checkpoints, evaluates and logs progress. With one process nothing here is active.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes in the environment (if any); returns this rank's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank in rank order, keeping gradients; itself when there is one rank."""
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    # Gather rows of a 2-D tensor: the backward pass then hands gloo's all-to-all contiguous gradients (the
    # gradient of a gathered feature map can have permuted strides, which gloo would read wrongly).
    rows = dist_fn.all_gather(tensor.reshape(len(tensor), -1).contiguous())
    return torch.cat(rows).reshape(-1, *tensor.shape[1:])


def local_slice(world: World, batch_size: int) -> slice:
    """The rows of a global batch of ``batch_size`` that this rank trains on."""
    if batch_size % world.size:
        raise ValueError(f"the batch size {batch_size} must be a multiple of the {world.size} processes")
    share = batch_size // world.size
    return slice(world.rank * share, (world.rank + 1) * share)


def wrap(module: nn.Module, world: World, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel when there are several ranks."""
    if not world.distributed:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                               find_unused_parameters=find_unused_parameters)


def sync_batch_norm(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """Batch-norm synchronised across ranks on GPUs (PyTorch's SyncBatchNorm has no CPU implementation)."""
    if world.distributed and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def agree(world: World, decision: bool) -> bool:
    """Rank 0's ``decision`` on every rank, so that all ranks stop after the same epoch."""
    if not world.distributed:
        return decision
    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])
