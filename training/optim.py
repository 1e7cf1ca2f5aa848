"""LARS with linear warm-up then cosine decay (the SimCLR/NAC recipe).

Written here rather than imported: the maintained implementations live inside larger frameworks (lightly,
solo-learn) whose dependencies the GPU image does not have, and LARS is one short update rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each tensor is scaled by a layer-wise trust ratio.

    For groups with ``lars=True``: g <- g + wd * w, then g <- g * eta * ||w|| / ||g|| (when both norms are
    non-zero), then heavy-ball momentum. Groups with ``lars=False`` (biases, batch-norm) take plain momentum
    SGD without weight decay, as in SimCLR.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 0.001) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError("LARS needs lr > 0, 0 <= momentum < 1, weight_decay >= 0, trust_coefficient > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, lars=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's Optimizer signature
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["lars"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["trust_coefficient"] * w_norm / g_norm, torch.ones_like(w_norm))
                    grad = grad * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def lars_param_groups(model: nn.Module) -> list[dict]:
    """Weights of convs and linears get LARS and weight decay; biases and norm parameters do not."""
    adapted, plain = [], []
    for param in model.parameters():
        if param.requires_grad:
            (adapted if param.ndim > 1 else plain).append(param)
    return [{"params": adapted, "lars": True}, {"params": plain, "lars": False, "weight_decay": 0.0}]


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Per-step schedule: linear from 0 to the base lr over ``warmup_steps``, then cosine to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)
