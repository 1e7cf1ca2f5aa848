"""Batched encoding of uint8 images with a trained model: packed sign codes, or backbone features."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from nac_hash.codes import pack_codes
from nac_hash.models import HashingModel
from nac_hash.progress import progress_bar
from nac_hash.transforms import model_input


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA, fp32 on the CPU: an index's codes must not depend on which CPU encoded them (training's
    bf16 on CPUs is chosen apart, in nac_hash.training.precision)."""
    return torch.bfloat16 if device.type == "cuda" else None


@torch.no_grad()
def _map_batches(model: HashingModel, batches: Iterable[np.ndarray | torch.Tensor],
                 output: Callable[[torch.Tensor], np.ndarray]) -> list[np.ndarray]:
    """``output(normalised images)`` of each batch of (B, S, S, 3) uint8 images, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    dtype = autocast_dtype(device)
    results = []
    for batch in batches:
        images = torch.as_tensor(batch).to(device, non_blocking=True).permute(0, 3, 1, 2)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            results.append(output(model_input(images, model.config)))
    return results


def encode_batches(model: HashingModel, batches: Iterable[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Encode batches of (B, S, S, 3) uint8 images into one (N, D / 8) packed code array."""
    codes = _map_batches(model, batches, lambda x: pack_codes(model.encode(x)))
    return np.concatenate(codes) if codes else np.zeros((0, model.config.code_bits // 8), dtype=np.uint8)


def code_logits(model: HashingModel, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """(N, S, S, 3) uint8 images -> (N, D) float32 code scores (HashingModel.encode); their signs are the codes."""
    return _float_outputs(model, images, batch_size, model.encode, model.config.code_bits)


def rotation_inputs(model: HashingModel, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """(N, S, S, 3) uint8 images -> (N, d) float32 inputs of a code rotation (HashingModel.rotation_input)."""
    return _float_outputs(model, images, batch_size, lambda x: model.rotation_input(model(x)), model.rotation_width)


def _float_outputs(model: HashingModel, images: np.ndarray | torch.Tensor, batch_size: int,
                   output: Callable[[torch.Tensor], torch.Tensor], width: int) -> np.ndarray:
    """``output(normalised images)`` of ``images``, a batch at a time, as one (N, width) float32 array."""
    parts = _map_batches(model, _batches(images, batch_size, False, ""), lambda x: output(x).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)


def _batches(images: np.ndarray | torch.Tensor, batch_size: int, progress: bool, desc: str
             ) -> Iterable[np.ndarray | torch.Tensor]:
    starts = range(0, len(images), batch_size)
    batches = (images[i : i + batch_size] for i in starts)
    return progress_bar(batches, total=len(starts), desc=desc, unit="batch") if progress else batches


def encode_images(model: HashingModel, images: np.ndarray, batch_size: int = 500,
                  progress: bool = False) -> np.ndarray:
    """Encode an (N, S, S, 3) uint8 array in batches; returns (N, D / 8) packed codes."""
    return encode_batches(model, _batches(images, batch_size, progress, "encode"))


def embed_images(model: HashingModel, images: np.ndarray, batch_size: int = 500,
                 progress: bool = False) -> np.ndarray:
    """Backbone features h of an (N, S, S, 3) uint8 array: (N, feature_dim) float32, for feature baselines."""
    features = _map_batches(model, _batches(images, batch_size, progress, "embed"),
                            lambda x: model(x).float().cpu().numpy())
    return np.concatenate(features) if features else np.zeros((0, model.feature_dim), dtype=np.float32)
