import math

import pytest
import torch

from nac_hash.training.optim import LARS, warmup_cosine


def test_lars_step_matches_hand_computation():
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # norm 5
    weight.grad = torch.tensor([0.0, 1.0])
    optimizer = LARS([weight], lr=2.0, momentum=0.9, weight_decay=0.1, trust_coefficient=0.01)
    optimizer.step()
    grad = torch.tensor([0.3, 1.4])  # grad + 0.1 * w
    trust = 0.01 * 5.0 / grad.norm()
    first = 2.0 * trust * grad
    assert torch.allclose(weight.detach(), torch.tensor([3.0, 4.0]) - first)
    weight.grad = torch.tensor([0.0, 1.0])
    w = weight.detach().clone()
    optimizer.step()
    grad = torch.tensor([0.0, 1.0]) + 0.1 * w
    second = 0.9 * first + 2.0 * (0.01 * w.norm() / grad.norm()) * grad
    assert torch.allclose(weight.detach(), w - second, atol=1e-6)


def test_lars_rejects_bad_hyperparameters():
    with pytest.raises(ValueError):
        LARS([torch.nn.Parameter(torch.zeros(1))], lr=0.0)


def test_warmup_then_cosine():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=4, total_steps=12)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert rates[4] == pytest.approx(1.0)
    assert rates[8] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert rates[11] < rates[10] < rates[9]
