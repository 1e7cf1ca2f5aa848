"""LARS with linear warm-up then cosine decay (the SimCLR/NAC recipe).

Written here rather than imported: the maintained implementations live inside larger frameworks (lightly,
solo-learn) whose dependencies the GPU image does not have, and LARS is one short update rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each tensor is scaled by a layer-wise trust ratio.

    For every tensor: g <- g + wd * w; v <- momentum * v + lr * eta * ||w|| / ||g|| * g (the trust ratio is 1
    when either norm is zero); w <- w - v. Like the NAC reference, biases and batch-norm parameters are
    adapted and decayed too: exempting them (SimCLR's choice) hands them the raw learning rate of 3.0, which
    in our runs drove the codes to collapse.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 0.001) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError("LARS needs lr > 0, 0 <= momentum < 1, weight_decay >= 0, trust_coefficient > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"])
                w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                trust = torch.where((w_norm > 0) & (g_norm > 0),
                                    group["trust_coefficient"] * w_norm / g_norm, torch.ones_like(w_norm))
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                velocity = state["momentum_buffer"]
                velocity.mul_(group["momentum"]).add_(grad * (trust * group["lr"]))
                p.sub_(velocity)
        return loss


def warmup_cosine_factor(progress: float, warmup: float) -> float:
    """The lr multiplier at ``progress`` in [0, 1] of a run whose first ``warmup`` share is a linear ramp."""
    if progress < warmup:
        return progress / warmup
    decay = (progress - warmup) / max(1e-12, 1.0 - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, decay)))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Per-step schedule: linear from 0 to the base lr over ``warmup_steps``, then cosine to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return warmup_cosine_factor(step / max(1, total_steps), warmup_steps / max(1, total_steps))

    return LambdaLR(optimizer, factor)


def clock_warmup_cosine(optimizer: torch.optim.Optimizer, clock: Callable[[], float], warmup: float) -> LambdaLR:
    """The same shape on a clock: ``clock()`` gives the elapsed share of a time budget (nac_hash.training.budget)."""
    return LambdaLR(optimizer, lambda _step: warmup_cosine_factor(clock(), warmup))
