"""Nearest-neighbour positives: which images pair up (tests/test_train.py resumes a run that uses them)."""

import numpy as np
import pytest
import torch

from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel
from nac_hash.training.neighbours import nearest_neighbours, partners


def test_an_images_nearest_neighbour_is_its_twin_never_itself():
    torch.manual_seed(0)
    model = HashingModel(ModelConfig(arch="cnn_small", bits=16, image_size=16))
    distinct = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    images = np.repeat(distinct, 2, axis=0)  # rows 2i and 2i + 1 are the same image
    nearest = nearest_neighbours(model, images, k=3)
    assert nearest.shape == (12, 3)
    twins = torch.arange(12) ^ 1
    assert torch.equal(nearest[:, 0], twins)
    assert not (nearest == torch.arange(12).unsqueeze(1)).any()
    assert model.training
    with pytest.raises(ValueError, match=r"positive_neighbours must lie in \[1, 11\]"):
        nearest_neighbours(model, images, k=12)


def test_partners_are_the_image_itself_or_one_of_its_neighbours_in_the_asked_share():
    neighbours = torch.tensor([[1, 2], [2, 0], [0, 1]])
    index = torch.arange(3).repeat(2000)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(partners(index, neighbours, 0.0, generator), index)
    always = partners(index, neighbours, 1.0, generator)
    assert (always.unsqueeze(1) == neighbours[index]).any(1).all()
    assert set(always[index == 0].tolist()) == {1, 2}
    half = partners(index, neighbours, 0.5, generator)
    assert 0.45 < (half != index).float().mean() < 0.55

