"""The one inference transform, shared by evaluation, the indexer and the service.

Images are kept as uint8 RGB arrays at the model's square input size (resize the shorter side, then centre
crop); the model sees them as float tensors normalised with the mean and std stored in its checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from nac_hash.models import ModelConfig


def square_image(image: Image.Image, size: int) -> np.ndarray:
    """Any PIL image -> (size, size, 3) uint8 RGB: shorter side resized to ``size``, centre crop."""
    image = image.convert("RGB")
    if image.size != (size, size):
        width, height = image.size
        scale = size / min(width, height)
        resized = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(resized, Image.Resampling.BILINEAR)
        left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, 3, H, W) float images in [0, 1] -> channel-normalised float images."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean_t) / std_t


def model_input(images: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """(N, 3, S, S) uint8 images -> the normalised float32 batch the model expects."""
    return normalize(images.float() / 255.0, config.mean, config.std)
