"""SimCLR/NAC augmentations as batched tensor ops, so they run on the GPU beside the model.

Crops, mirrors, colour jitter and grayscale, then, where a run asks for them, copy-style edits
(:mod:`nac_hash.training.degrade`).

Input is a (N, 3, H, W) uint8 batch already on the device; output is a float batch in [0, 1] (the caller
normalises it with the model's statistics, as :func:`nac_hash.transforms.model_input` does at inference). Each image
draws its own crop, flip, jitter factors and coin flips. One simplification against torchvision: the order
of the four colour-jitter operations is drawn once per batch rather than once per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nac_hash.training.config import AugmentConfig
from nac_hash.training.degrade import degrade

_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, device: torch.device, generator: torch.Generator | None):
    return low + (high - low) * torch.rand(n, device=device, generator=generator)


def crop_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
               device: torch.device, generator: torch.Generator | None = None, tries: int = 10) -> torch.Tensor:
    """Random-resized-crop boxes as (N, 4) [centre x, centre y, width, height] in pixels.

    Like torchvision: up to ``tries`` draws of area and log-aspect per image, the first that fits wins, and
    an image with no fitting draw falls back to the whole image.
    """
    area = height * width
    target = area * _uniform(n * tries, *scale, device, generator)
    aspect = torch.exp(_uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), device, generator))
    w = torch.sqrt(target * aspect).view(n, tries)
    h = torch.sqrt(target / aspect).view(n, tries)
    fits = (w <= width) & (h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1, device=device))
    pick = first.clamp(min=0).unsqueeze(1)
    w = torch.where(first >= 0, w.gather(1, pick).squeeze(1), torch.full((n,), float(width), device=device))
    h = torch.where(first >= 0, h.gather(1, pick).squeeze(1), torch.full((n,), float(height), device=device))
    cx = w / 2 + (width - w) * torch.rand(n, device=device, generator=generator)
    cy = h / 2 + (height - h) * torch.rand(n, device=device, generator=generator)
    return torch.stack([cx, cy, w, h], dim=1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Crop (N, 3, H, W) float images to ``boxes``, mirror where ``flip``, resize to size x size (bilinear)."""
    n, _, height, width = images.shape
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = boxes[:, 2] / width * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = 2 * boxes[:, 0] / width - 1
    theta[:, 1, 1] = boxes[:, 3] / height
    theta[:, 1, 2] = 2 * boxes[:, 1] / height - 1
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma (ITU-R 601, as torchvision)."""
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    maxc, argmax = images.max(1)
    minc = images.min(1).values
    delta = maxc - minc
    saturation = torch.where(maxc > 0, delta / maxc.clamp(min=1e-12), torch.zeros_like(maxc))
    safe = delta.clamp(min=1e-12)
    r, g, b = images.unbind(1)
    hue = torch.where(argmax == 0, ((g - b) / safe) % 6, torch.where(argmax == 1, (b - r) / safe + 2,
                                                                      (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    return torch.stack([hue, saturation, maxc], 1)


def hsv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    h, s, v = images.unbind(1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=images.device).view(1, 3, 1, 1) + 6 * h.unsqueeze(1)) % 6
    channel = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * channel


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def color_jitter(images: torch.Tensor, config: AugmentConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter with per-image factors, in a per-batch random order."""
    n, device = len(images), images.device

    def factors(strength: float) -> torch.Tensor:
        return _per_image(_uniform(n, max(0.0, 1 - strength), 1 + strength, device, generator))

    def brightness(x: torch.Tensor) -> torch.Tensor:
        return (x * factors(config.brightness)).clamp(0, 1)

    def contrast(x: torch.Tensor) -> torch.Tensor:
        mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
        return torch.lerp(mean, x, factors(config.contrast)).clamp(0, 1)

    def saturation(x: torch.Tensor) -> torch.Tensor:
        return torch.lerp(grayscale(x), x, factors(config.saturation)).clamp(0, 1)

    def hue(x: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(x)
        shift = _per_image(_uniform(n, -config.hue, config.hue, device, generator)).squeeze(1)
        hsv = torch.stack([(hsv[:, 0] + shift) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
        return hsv_to_rgb(hsv)

    operations = [brightness, contrast, saturation, hue]
    for i in torch.randperm(4, generator=generator, device=generator.device if generator else "cpu").tolist():
        images = operations[i](images)
    return images


def augment(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, 3, H, W) uint8 batch -> one randomly augmented float32 view of each image, in [0, 1]."""
    n, _, height, width = images.shape
    device = images.device
    x = images.float() / 255.0
    boxes = crop_boxes(n, height, width, (config.crop_scale_min, 1.0), config.crop_ratio, device, generator)
    flip = torch.rand(n, device=device, generator=generator) < config.mirror_probability
    x = resized_crop(x, boxes, flip, config.size)
    jitter = _per_image(torch.rand(n, device=device, generator=generator) < config.jitter_probability)
    x = torch.where(jitter, color_jitter(x, config, generator), x)
    gray = _per_image(torch.rand(n, device=device, generator=generator) < config.grayscale_probability)
    x = torch.where(gray, grayscale(x).expand_as(x), x)
    return degrade(x, config.degrade_probability, generator)


def random_affine(images: torch.Tensor, max_rotation: float = math.pi, scale: tuple[float, float] = (0.7, 1.3),
                  max_shear: float = math.pi / 6, max_shift: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """AET's transformations: a random rotation, scale, shear and shift of each (N, 3, H, W) float image.

    Returns:
        The transformed images (zero outside the source, i.e. the dataset mean after normalisation) and the
        (N, 6) affine matrices of ``F.affine_grid``, flattened: the targets AET regresses.
    """
    n, device = len(images), images.device
    angle = _uniform(n, -max_rotation, max_rotation, device, None)
    zoom = _uniform(n, *scale, device, None)
    shear = _uniform(n, -max_shear, max_shear, device, None)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.eye(2, device=device).repeat(n, 1, 1)
    shearing[:, 0, 1] = torch.tan(shear)
    linear = rotation @ shearing * zoom[:, None, None]
    shift = _uniform(2 * n, -2 * max_shift, 2 * max_shift, device, None).view(n, 2, 1)  # grid spans [-1, 1]
    theta = torch.cat([linear, shift], dim=2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    transformed = F.grid_sample(images, grid.to(images.dtype), align_corners=False)
    return transformed, theta.flatten(1)
