"""SimCLR/NAC augmentations as batched tensor ops, so they run on the GPU beside the model.

Crops, mirrors, colour jitter and grayscale, then, where a run asks for them, copy-style edits
(:mod:`nac_hash.training.degrade`).

Input is a (N, 3, H, W) uint8 batch already on the device; output is a float batch in [0, 1] (the caller
normalises it with the model's statistics, as :func:`nac_hash.transforms.model_input` does at inference). Each image
draws its own crop, flip, jitter factors and coin flips. One simplification against torchvision: the order
of the four colour-jitter operations is drawn once per batch rather than once per image.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nac_hash.training.config import AugmentConfig
from nac_hash.training.degrade import degrade

logger = logging.getLogger(__name__)

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
    # The grid F.affine_grid would make for a crop (no rotation or shear), built by broadcasting: affine_grid's
    # batched 3 x 2 matrix products took longer than the sampling itself.
    steps = (2 * torch.arange(size, device=images.device, dtype=images.dtype) + 1) / size - 1
    scale_x = (boxes[:, 2] / width * torch.where(flip, -1.0, 1.0)).view(n, 1, 1)
    scale_y = (boxes[:, 3] / height).view(n, 1, 1)
    x = scale_x * steps.view(1, 1, size) + (2 * boxes[:, 0] / width - 1).view(n, 1, 1)
    y = scale_y * steps.view(1, size, 1) + (2 * boxes[:, 1] / height - 1).view(n, 1, 1)
    grid = torch.stack([x.expand(n, size, size), y.expand(n, size, size)], dim=3)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma (ITU-R 601, as torchvision)."""
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _fraction(x: torch.Tensor) -> torch.Tensor:
    """x mod 1, in [0, 1]: floor is a vectorised op on the CPU where float ``%`` is not."""
    return x - torch.floor(x)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1) (torchvision's formulas, channel maxima taken
    elementwise, which is several times faster on the CPU than a reduction over the channel dimension)."""
    r, g, b = images.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    saturation = delta / maxc.clamp(min=1e-12)  # 0 where the pixel is black: delta is 0 there too
    safe = delta.clamp(min=1e-12)  # where delta is 0 all three channels are equal and the hue comes out 0
    # Which channel holds the maximum (the first on a tie, where both sectors give the same hue), as 0/1
    # weights: on the CPU, arithmetic on them is several times faster than torch.where with a pixel mask.
    red = (maxc == r).to(images.dtype)
    green = (1 - red) * (maxc == g).to(images.dtype)
    sector = (red * (g - b) + green * (b - r + 2 * safe) + (1 - red - green) * (r - g + 4 * safe)) / safe
    return torch.stack([_fraction(sector / 6), saturation, maxc], 1)


def hsv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    h, s, v = images.unbind(1)
    k = torch.tensor([5.0, 3.0, 1.0], device=images.device).view(1, 3, 1, 1) + 6 * h.unsqueeze(1)
    k = k - 6 * torch.floor(k / 6)
    channel = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * channel


def shift_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each (N, 3, H, W) image by its ``shifts[i]`` of a turn (torchvision's adjust_hue)."""
    h, s, v = rgb_to_hsv(images).unbind(1)
    return hsv_to_rgb(torch.stack([_fraction(h + shifts.view(-1, 1, 1)), s, v], 1))


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return (images * factors).clamp(0, 1)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return torch.lerp(mean, images, factors).clamp(0, 1)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return torch.lerp(grayscale(images), images, factors).clamp(0, 1)


class CompiledOnCpu:
    """``fn`` run through torch.compile on CPU tensors, and as it is elsewhere or where compiling fails.

    A colour adjustment is a chain of elementwise ops over small images (the hue shift, some forty): eager
    PyTorch reads and writes the whole batch once per op, the loop Inductor generates once per chain. On this
    project's CPU the augmentations' share of a bf16 training step halved and the step ran 1.06x as fast
    (benchmarks/results/training-speed/step-profile-turns-jitter.json). Compiling needs a C++ compiler, which
    a slim container lacks; torch.compile only finds out at the first call, so that call falls back to ``fn``
    for good, with a warning.
    ``compiled`` is None once running eagerly.
    """

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.compiled: Callable[..., torch.Tensor] | None = self._compile_and_call
        functools.update_wrapper(self, fn)

    def _compile_and_call(self, *args: torch.Tensor) -> torch.Tensor:
        """The first CPU call compiles: torch.compile imports TorchDynamo, seconds that importing this module, as
        every command that evaluates does, should not cost."""
        self.compiled = torch.compile(self.fn)
        return self.compiled(*args)

    def __call__(self, images: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None and images.device.type == "cpu":
            try:
                return self.compiled(images, *args)
            except Exception as e:  # a missing compiler surfaces as one of several exception types
                logger.warning("running %s eagerly: torch.compile failed: %s", self.fn.__name__,
                               (str(e).strip() or type(e).__name__).splitlines()[0])
                self.compiled = None
        return self.fn(images, *args)


COLOUR_ADJUSTMENTS = tuple(CompiledOnCpu(fn) for fn in (adjust_brightness, adjust_contrast, adjust_saturation,
                                                         shift_hue))
compiled_brightness, compiled_contrast, compiled_saturation, compiled_shift_hue = COLOUR_ADJUSTMENTS


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def color_jitter(images: torch.Tensor, config: AugmentConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter with per-image factors, in a per-batch random order."""
    n, device = len(images), images.device

    def factors(strength: float) -> torch.Tensor:
        return _per_image(_uniform(n, max(0.0, 1 - strength), 1 + strength, device, generator))

    def brightness(x: torch.Tensor) -> torch.Tensor:
        return compiled_brightness(x, factors(config.brightness))

    def contrast(x: torch.Tensor) -> torch.Tensor:
        return compiled_contrast(x, factors(config.contrast))

    def saturation(x: torch.Tensor) -> torch.Tensor:
        return compiled_saturation(x, factors(config.saturation))

    def hue(x: torch.Tensor) -> torch.Tensor:
        return compiled_shift_hue(x, _uniform(n, -config.hue, config.hue, device, generator))

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
    # Per-image coin flips as 0/1 weights of an exact lerp (weight 0 gives x, weight 1 the other operand):
    # cheaper on the CPU than torch.where with a broadcast mask.
    jitter = _per_image((torch.rand(n, device=device, generator=generator) < config.jitter_probability).float())
    x = torch.lerp(x, color_jitter(x, config, generator), jitter)
    gray = _per_image((torch.rand(n, device=device, generator=generator) < config.grayscale_probability).float())
    x = torch.lerp(x, grayscale(x).expand_as(x), gray)
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
