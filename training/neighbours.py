"""Nearest-neighbour positives: the second view of an image is sometimes drawn from one of its nearest training
images instead of from the image itself.

Two views of one image teach a code to survive augmentation, and nothing else pulls two different images of
one kind together: every other image is a negative. Pairing an image with a neighbour in the current code space
(as NNCLR, Dwibedi et al., ICCV 2021, and SCAN, Van Gansbeke et al., ECCV 2020, use neighbours) gives the codes
of look-alike images a reason to agree. The neighbours come from the model being trained, recomputed every
``REFRESH_EPOCHS`` epochs, so they follow it as it improves.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nac_hash.inference import code_logits
from nac_hash.models import HashingModel

REFRESH_EPOCHS = 10
_ROWS = 1024  # similarity rows per matrix product: 50,000 training images never need an N x N matrix


def nearest_neighbours(model: HashingModel, images: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` nearest other images of each of ``images`` ((N, S, S, 3) uint8) by the cosine of their code
    pre-activations: an (N, k) int64 tensor of row indices, nearest first. Leaves the model in train mode."""
    if not 0 < k < len(images):
        raise ValueError(f"positive_neighbours must lie in [1, {len(images) - 1}] for {len(images)} training "
                         f"images, got {k}")
    codes = F.normalize(torch.from_numpy(code_logits(model, images)), dim=1)
    model.train()
    nearest = []
    for start in range(0, len(codes), _ROWS):
        similarity = codes[start : start + _ROWS] @ codes.T
        rows = torch.arange(start, start + len(similarity))
        similarity[rows - start, rows] = -float("inf")  # an image is not its own neighbour
        nearest.append(similarity.topk(k, dim=1).indices)
    return torch.cat(nearest)


def partners(index: torch.Tensor, neighbours: torch.Tensor, share: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """For each image in ``index``, one of its ``neighbours`` drawn uniformly with probability ``share``, else
    the image itself; ``neighbours`` lies on ``index``'s device."""
    pick = torch.randint(neighbours.shape[1], index.shape, device=index.device, generator=generator)
    take = torch.rand(index.shape, device=index.device, generator=generator) < share
    return torch.where(take, neighbours[index, pick], index)
