"""A perceptual hash that a horizontal mirror leaves unchanged: the perceptual half of a copy model's code.

pHash (Zauner, 2010; ImageHash's ``phash``) takes the lowest 8 x 8 frequencies of the 2-D DCT of a 32 x 32
grayscale image and sets a bit where a coefficient lies above their median. That survives resizing, JPEG
re-encoding, colour changes and blur almost perfectly, and a mirror not at all. The DCT basis functions of even
horizontal frequency are symmetric about the vertical axis, so their coefficients are the same for an image
and its mirror: this hash keeps only those, the ``bits`` lowest of them in zig-zag order (the constant term,
which is the same sign for every image, left out). A learned code finds the rotated and cropped copies that
both hashes miss (nac_hash.models.HashingModel with ``ModelConfig.perceptual_bits``).

Input: (N, 3, S, S) channel-normalised images, as the model sees them; output: (N, bits) float scores whose
signs are the bits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DCT_SIZE = 32  # pHash's grayscale size
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")


def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix: row k holds the k-th cosine basis function over ``size`` samples."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    n = torch.arange(size, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * n + 1) / (2 * size)) * math.sqrt(2 / size)
    basis[0] /= math.sqrt(2)
    return basis.float()


def mirror_invariant_frequencies(bits: int) -> list[tuple[int, int]]:
    """(vertical, horizontal) frequencies with an even horizontal part, lowest first, the constant term left out."""
    pairs = [(u, v) for u in range(DCT_SIZE) for v in range(0, DCT_SIZE, 2)]
    pairs.sort(key=lambda pair: (max(pair), sum(pair)))
    return pairs[1 : bits + 1]


class MirrorInvariantDCTHash(nn.Module):
    """pHash's recipe on the mirror-symmetric DCT frequencies only (see the module docstring)."""

    def __init__(self, bits: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        frequencies = torch.tensor(mirror_invariant_frequencies(bits))
        self.register_buffer("dct", dct_matrix(DCT_SIZE), persistent=False)
        self.register_buffer("rows", frequencies[:, 0], persistent=False)
        self.register_buffer("columns", frequencies[:, 1], persistent=False)
        luma = torch.tensor(LUMA).view(1, 3, 1, 1)
        # gray = sum_c luma_c * (x_c * std_c + mean_c): one weighted sum of the normalised channels plus a constant
        self.register_buffer("weights", luma * torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("offset", (luma * torch.tensor(mean).view(1, 3, 1, 1)).sum(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        gray = (images.float() * self.weights).sum(1, keepdim=True) + self.offset
        if gray.shape[-1] != DCT_SIZE or gray.shape[-2] != DCT_SIZE:
            gray = F.interpolate(gray, size=DCT_SIZE, mode="bilinear", antialias=True, align_corners=False)
        spectrum = self.dct @ gray[:, 0] @ self.dct.T
        coefficients = spectrum[:, self.rows, self.columns]
        return coefficients - coefficients.quantile(0.5, dim=1, keepdim=True)
