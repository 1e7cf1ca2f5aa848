"""The one inference transform, shared by evaluation, the indexer and the service.

Images are kept as uint8 RGB arrays at the model's square input size (resize the shorter side, then centre
crop); the model sees them as float tensors normalised with the mean and std stored in its checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from nac_hash.models import ModelConfig


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the largest centred square of a width x height image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_image(image: Image.Image, size: int) -> np.ndarray:
    """Any PIL image -> (size, size, 3) uint8 RGB: the centred square, resized to ``size`` (bilinear).

    Cropping before resizing keeps every allocation within the source and the output: resizing the shorter
    side first would scale a 1 x 300,000 image up to 32 x 9,600,000. ``reducing_gap`` lets PIL shrink a large
    image by an integer factor with a box filter before the bilinear pass, so each source pixel is read once.
    """
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=centre_square(*image.size),
                             reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, 3, H, W) float images in [0, 1] -> channel-normalised float images."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean_t) / std_t


def model_input(images: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """(N, 3, S, S) uint8 images -> the normalised float32 batch the model expects."""
    return normalize(images.float() / 255.0, config.mean, config.std)
