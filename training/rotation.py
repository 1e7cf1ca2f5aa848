"""An ITQ rotation of a trained model's code pre-activations, fitted on its training images.

Iterative quantization (Gong & Lazebnik, 2011) finds the orthogonal rotation of centred pre-activations whose
signs lose the least: the same model then spreads its codes more evenly over the Hamming cube. Fitted on the
backbone's unit-length features instead (a PCA to D dimensions, then the rotation), it skips the projection
head, which on small aligned images such as the 8 x 8 digits keeps less of what the backbone learned. It is fitted
after training, on the images the model trained on, and stored in the model (``ModelConfig.code_rotation``),
so every path that encodes (eval, the indexer, the service) uses it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from nac_hash.baselines import ITQ
from nac_hash.inference import rotation_inputs
from nac_hash.models import HashingModel
from nac_hash.training.config import TrainConfig
from nac_hash.training.datasets import load_dataset
from nac_hash.training.splits import get_protocol, make_split


def training_images(sidecar: dict) -> np.ndarray:
    """The training split of the data a checkpoint records, as (N, S, S, 3) uint8 images."""
    recorded = {k: v for k, v in sidecar.get("training", {}).items()
                if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    config = TrainConfig(**recorded)
    data = load_dataset(config.dataset, config.data_root, config.image_size)
    split = make_split(get_protocol(config.protocol), data.labels, data.is_test, config.split_seed, config.queries,
                       config.train_images, data.class_names)
    return data.images[split.train]


def require_unrotated(model: HashingModel) -> None:
    """Raise ValueError if ``model`` has a code rotation already (checked before any image is decoded)."""
    if model.config.code_rotation:
        raise ValueError("this model has a code rotation already (a folder run fits one as it ends): "
                         "export it without --itq")


def with_code_rotation(model: HashingModel, images: np.ndarray, rotation_input: str = "logits", seed: int = 0,
                       batch_size: int = 1000) -> HashingModel:
    """A copy of ``model`` whose codes are the ITQ-rotated signs of its ``rotation_input`` (the pre-activations,
    or the unit-length backbone features; ModelConfig) on ``images``."""
    require_unrotated(model)
    config = dataclasses.replace(model.config, code_rotation=True, rotation_input=rotation_input)
    rotated = HashingModel(config).to(next(model.parameters()).device)
    placeholders = {"rotation_center": rotated.rotation_center, "rotation": rotated.rotation}  # fitted below
    rotated.load_state_dict(model.state_dict() | placeholders)
    itq = ITQ(model.config.bits, seed=seed).fit(rotation_inputs(rotated, images, batch_size))
    rotated.rotation_center.copy_(torch.from_numpy(itq.center))
    rotated.rotation.copy_(torch.from_numpy(itq.projection))
    return rotated.eval()
