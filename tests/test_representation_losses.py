"""Deep InfoMax and AET, the two representation learners benchmarked beside NAC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nac_hash.inference import embed_images
from nac_hash.loss import AETLoss, DeepInfoMaxLoss
from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel
from nac_hash.training.augment import random_affine
from nac_hash.training.config import load_config
from nac_hash.training.objective import Objective


def test_deep_infomax_matches_slow_computation():
    torch.manual_seed(0)
    loss = DeepInfoMaxLoss(local_dim=5, global_dim=3)
    local, vector = torch.randn(4, 5, 2, 2), torch.randn(4, 3)
    w = loss.critic.weight  # (local_dim, global_dim)
    positive, negative = [], []
    for i in range(4):
        for k in range(4):
            for cell in local[k].flatten(1).T:
                score = cell @ (w @ vector[i])
                (positive if i == k else negative).append(score)
    expected = F.softplus(-torch.stack(positive)).mean() + F.softplus(torch.stack(negative)).mean()
    assert torch.allclose(loss(local, vector), expected, atol=1e-5)


def test_aet_loss_is_the_error_of_the_decoded_parameters():
    loss = AETLoss(feature_dim=4)
    rng = np.random.default_rng(0)
    w1, b1, w2, b2 = rng.normal(size=(4, 8)), rng.normal(size=4), rng.normal(size=(6, 4)), rng.normal(size=6)
    with torch.no_grad():
        for layer, (w, b) in zip((loss.decoder[0], loss.decoder[2]), ((w1, b1), (w2, b2)), strict=True):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
    features, transformed, params = (rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 6)))
    # By hand, in float64 NumPy: the decoder reads the two features side by side, then the mean squared error.
    errors = []
    for f, t, p in zip(features, transformed, params, strict=True):
        hidden = np.maximum(w1 @ np.concatenate([f, t]) + b1, 0)
        errors += list((w2 @ hidden + b2 - p) ** 2)
    as_tensors = [torch.from_numpy(x).float() for x in (features, transformed, params)]
    assert loss(*as_tensors).item() == pytest.approx(np.mean(errors), rel=1e-5)


def test_random_affine_returns_the_matrix_it_applied():
    torch.manual_seed(0)
    images = torch.randn(5, 3, 16, 16)
    transformed, theta = random_affine(images)
    assert transformed.shape == images.shape and theta.shape == (5, 6)
    grid = F.affine_grid(theta.view(5, 2, 3), [5, 3, 16, 16], align_corners=False)
    assert torch.allclose(transformed, F.grid_sample(images, grid, align_corners=False))
    determinants = torch.linalg.det(theta.view(5, 2, 3)[:, :, :2])
    assert torch.all(determinants > 0.7**2 - 1e-4) and torch.all(determinants < 1.3**2 + 1e-4)  # scale range
    identity, theta0 = random_affine(images, max_rotation=0, scale=(1, 1), max_shear=0, max_shift=0)
    assert torch.allclose(theta0, torch.tensor([1.0, 0, 0, 0, 1, 0]).expand(5, 6))
    assert torch.allclose(identity, images, atol=1e-5)


@pytest.mark.slow
def test_dim_and_aet_losses_fall_and_train_their_own_modules():
    for method in ("dim", "aet"):
        torch.manual_seed(0)
        config = load_config(None, {"method": method, "arch": "cnn_small", "bits": 16, "dataset": "folder"})
        model = HashingModel(config.model_config())
        assert model.inference is None  # only NAC variants have an inference head
        objective = Objective(config, model)
        parameters = [*model.parameters(), *objective.trainable_parameters()]
        assert objective.trainable_parameters()
        optimizer = torch.optim.Adam(parameters, lr=3e-3)
        # Coordinate ramps and an off-centre square: a rotation or shift of them is visible in the pixels.
        y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
        base = torch.stack([x, y, ((x > 0.3) & (y < -0.2)).float()])
        images = base.expand(16, 3, 32, 32) + 0.3 * torch.randn(16, 3, 32, 32)
        losses = []
        for _ in range(60):
            loss = objective(model, images, images.flip(3))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert math.isfinite(losses[-1]) and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), (method, losses)


def test_embed_images_returns_backbone_features():
    model = HashingModel(ModelConfig(arch="cnn_small", bits=16)).eval()
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    features = embed_images(model, images, batch_size=3)
    assert features.shape == (7, model.feature_dim) and features.dtype == np.float32
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.feature_map(x).mean(dim=(2, 3)), model(x), atol=1e-5)
