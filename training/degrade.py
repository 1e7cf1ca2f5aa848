"""Copy-style degradations: the edits an image picks up when it is re-shared, for codes that find copies.

A small rotation, a down- and up-scale, a Gaussian blur, JPEG re-encoding and an opaque strip (a caption or a
watermark). Each view gets each edit with ``probability``, independently, so a view may get several, like the
chained copies of ``nac-hash bench copies``. The retrieval recipes leave them off (``degrade_probability`` 0):
they teach invariance to edits, not to the changes of viewpoint and colour that separate classes.

Input and output: (N, 3, S, S) float batches in [0, 1] on any device.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MAX_ROTATION_DEGREES = 10.0
MIN_SCALE = 0.5  # a view is scaled down to between half and all of its size, then back up
BLUR_SIGMA = (0.3, 1.5)  # pixels, at the model's input size
BLUR_RADIUS = 3
JPEG_QUALITY = (20, 90)
STRIP_HEIGHT = (1 / 16, 1 / 6)  # shares of the side
STRIP_WIDTH = (1 / 4, 3 / 4)


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=like.device, generator=generator)


def rotate(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn each image by up to MAX_ROTATION_DEGREES either way about its centre; corners come in black."""
    angle = _uniform(len(images), -1, 1, images, generator) * math.radians(MAX_ROTATION_DEGREES)
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rescale(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image down (antialiased) to a random share in [MIN_SCALE, 1] of its side, then back up."""
    size = images.shape[-1]
    sides = torch.round(_uniform(len(images), MIN_SCALE, 1, images, generator) * size).long().clamp(1, size)
    out = images.clone()
    for side in sides.unique().tolist():
        chosen = sides == side
        small = F.interpolate(images[chosen], size=side, mode="bilinear", antialias=True, align_corners=False)
        out[chosen] = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
    return out


def blur(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A separable Gaussian blur of each image with its own sigma in BLUR_SIGMA (edges reflected)."""
    n, channels, height, width = images.shape
    sigma = _uniform(n, *BLUR_SIGMA, images, generator)
    offsets = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-offsets.square() / (2 * sigma.unsqueeze(1).square()))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # one row per image channel
    x = images.reshape(1, n * channels, height, width)
    x = F.conv2d(F.pad(x, (BLUR_RADIUS, BLUR_RADIUS, 0, 0), mode="reflect"), kernel.view(-1, 1, 1, kernel.shape[1]),
                 groups=n * channels)
    x = F.conv2d(F.pad(x, (0, 0, BLUR_RADIUS, BLUR_RADIUS), mode="reflect"), kernel.view(-1, 1, kernel.shape[1], 1),
                 groups=n * channels)
    return x.view(n, channels, height, width)


def _jpeg_round_trip(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def jpeg(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Re-encode each image as a JPEG of a random quality in JPEG_QUALITY (on the CPU, with Pillow)."""
    quality = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (len(images),), device=images.device,
                            generator=generator).tolist()
    pixels = images.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = np.stack([_jpeg_round_trip(image, q) for image, q in zip(pixels, quality, strict=True)])
    return torch.from_numpy(decoded).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255


def strip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Paint an opaque bar of one random colour, a caption's size, somewhere on each image."""
    n, _, size, _ = images.shape
    height = torch.ceil(_uniform(n, *STRIP_HEIGHT, images, generator) * size)
    width = torch.ceil(_uniform(n, *STRIP_WIDTH, images, generator) * size)
    top = _uniform(n, 0, 1, images, generator) * (size - height)
    left = _uniform(n, 0, 1, images, generator) * (size - width)
    position = torch.arange(size, device=images.device, dtype=images.dtype)
    rows = (position >= top.floor()[:, None]) & (position < (top.floor() + height)[:, None])
    columns = (position >= left.floor()[:, None]) & (position < (left.floor() + width)[:, None])
    inside = (rows[:, :, None] & columns[:, None, :]).unsqueeze(1)
    colour = torch.rand(n, 3, 1, 1, device=images.device, generator=generator, dtype=images.dtype)
    return torch.where(inside, colour, images)


EDITS = (rotate, rescale, blur, jpeg, strip)


def degrade(images: torch.Tensor, probability: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply each of EDITS, in that order, to a random ``probability`` share of the (N, 3, S, S) batch."""
    if probability == 0:
        return images
    images = images.clone()  # edited in place below; the caller's batch stays as it was
    for edit in EDITS:
        chosen = torch.rand(len(images), device=images.device, generator=generator) < probability
        if chosen.any():
            images[chosen] = edit(images[chosen], generator).clamp(0, 1)
    return images
