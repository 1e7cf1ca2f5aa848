"""The Python API's model: codes for images given as files, bytes, PIL images or arrays, in a few lines.

>>> import nac_hash
>>> model = nac_hash.load_model()                  # the packaged default model
>>> model.bits
128
>>> import numpy as np
>>> codes = model.encode([np.zeros((48, 64, 3), np.uint8), np.full((20, 20, 3), 255, np.uint8)])
>>> codes.shape, codes.dtype                       # 128 bits packed into 16 bytes per image
((2, 16), dtype('uint8'))
>>> int(nac_hash.hamming(codes[0], codes[1])) > 0  # a black and a white image get different codes
True

Every image is prepared as the indexer prepares it (:mod:`nac_hash.images`): upright by its EXIF orientation,
its centred square resized to the model's input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nac_hash.checkpoint import default_checkpoint, load_checkpoint
from nac_hash.codes import hamming_distance, pack_codes
from nac_hash.images import decode_image, read_image, square_image
from nac_hash.inference import code_logits
from nac_hash.models import HashingModel

ImageLike = str | Path | bytes | Image.Image | np.ndarray
"""A file path, the bytes of an encoded image, a PIL image, or an (H, W, 3) uint8 RGB array."""


def _one_image(image: ImageLike, size: int) -> np.ndarray:
    """Any :data:`ImageLike` -> the model's (size, size, 3) uint8 input (raises InvalidImageError)."""
    if isinstance(image, str | Path):
        return read_image(Path(image), size)
    if isinstance(image, bytes):
        return decode_image(image, size)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"an image array must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        return square_image(image, size)
    raise TypeError(f"not an image: {type(image).__name__} (give a path, bytes, a PIL image or an array)")


def as_batch(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One image or a sequence of them -> a list (a 4-D array is a sequence of (H, W, 3) arrays)."""
    if isinstance(images, str | Path | bytes | Image.Image) or (isinstance(images, np.ndarray) and images.ndim == 3):
        return [images]
    return list(images)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes: (N, D/8) x (M, D/8) -> (N, M); single codes are one row each."""
    return hamming_distance(np.atleast_2d(a), np.atleast_2d(b)).squeeze()


@dataclass(frozen=True)
class Model:
    """A trained hashing model (:func:`load_model`): ``encode`` gives packed codes, ``embed`` their real values."""

    network: HashingModel

    @property
    def bits(self) -> int:
        return self.network.config.code_bits

    @property
    def image_size(self) -> int:
        """The side in pixels of the square each image is resized to."""
        return self.network.config.image_size

    def prepare(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Images -> the (N, S, S, 3) uint8 array the network reads."""
        prepared = [_one_image(image, self.image_size) for image in as_batch(images)]
        return np.stack(prepared) if prepared else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)

    def embed(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Images -> (N, bits) float32 pre-activations: the codes are their signs, and their magnitudes say
        how sure each bit is."""
        return code_logits(self.network, self.prepare(images))

    def encode(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Images -> (N, bits / 8) uint8 packed codes, the most significant bit first (as the index stores them)."""
        return pack_codes(self.embed(images))


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> Model:
    """The model in the checkpoint at ``path`` (a ``.safetensors`` file with its ``.json``), or the packaged
    default model (trained on CIFAR-10) when ``path`` is None.

    Raises:
        nac_hash.checkpoint.CheckpointError: the file is missing, corrupt or not a model.
    """
    network, _ = load_checkpoint(default_checkpoint() if path is None else path, device)
    return Model(network)
