"""Batched encoding of uint8 images into packed codes with a trained model."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from nac_hash.codes import pack_codes
from nac_hash.models import HashingModel
from nac_hash.transforms import model_input


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA, full precision elsewhere (CPU autocast is slower than fp32 for these nets)."""
    return torch.bfloat16 if device.type == "cuda" else None


@torch.no_grad()
def encode_batches(model: HashingModel, batches: Iterable[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Encode batches of (B, S, S, 3) uint8 images into one (N, D / 8) packed code array."""
    model.eval()
    device = next(model.parameters()).device
    dtype = autocast_dtype(device)
    codes = []
    for batch in batches:
        images = torch.as_tensor(batch).to(device, non_blocking=True).permute(0, 3, 1, 2)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model.encode(model_input(images, model.config))
        codes.append(pack_codes(logits))
    if not codes:
        return np.zeros((0, model.config.bits // 8), dtype=np.uint8)
    return np.concatenate(codes)


def encode_images(model: HashingModel, images: np.ndarray, batch_size: int = 500,
                  progress: bool = False) -> np.ndarray:
    """Encode an (N, S, S, 3) uint8 array in batches; returns (N, D / 8) packed codes."""
    starts = range(0, len(images), batch_size)
    batches = (images[i : i + batch_size] for i in starts)
    if progress:
        batches = tqdm(batches, total=len(starts), desc="encode", unit="batch")
    return encode_batches(model, batches)
