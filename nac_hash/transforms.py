"""The one inference transform, shared by evaluation, the indexer and the service.

Images are kept as uint8 RGB arrays at the model's square input size (the centred square, resized; see
:func:`nac_hash.images.square_image`); the model sees them as float tensors normalised with the mean and std
stored in its checkpoint.
"""

from __future__ import annotations

import torch

from nac_hash.model_config import ModelConfig


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, 3, H, W) float images in [0, 1] -> channel-normalised float images."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean_t) / std_t


def model_input(images: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """(N, 3, S, S) uint8 images -> the normalised float32 batch the model expects."""
    return normalize(images.float() / 255.0, config.mean, config.std)
