"""Maps the configured method to a loss over two augmented views of a batch.

NAC, NAC-MQ and SimCLR compare the two views; Deep InfoMax (``dim``) scores each view on its own and AET
(``aet``) regresses a random affine transformation applied to the first view. DIM and AET learn features,
not codes: benchmarks hash their features with ITQ.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from nac_hash import loss as losses
from nac_hash.models import HashingModel, ema_update
from nac_hash.training.augment import random_affine
from nac_hash.training.config import TrainConfig
from nac_hash.training.distributed import gather
from nac_hash.training.methods import get_method


class Objective(nn.Module):
    """The training loss of a :class:`HashingModel`, with what it owns: NAC-MQ's momentum encoder and queue,
    Deep InfoMax's critic, AET's decoder (the last two are trained with the model).

    NAC-MQ scores view 1's noisy code with the online inference head applied to the *momentum* encoder's
    feature of view 2 (and vice versa). Taking phi itself from the momentum model, as a literal reading of
    the notes suggests, would leave the online phi without gradient and so the momentum phi frozen at its
    initialisation.
    """

    def __init__(self, config: TrainConfig, model: HashingModel) -> None:
        super().__init__()
        method = get_method(config.method)
        self.consume = BATCHES[method.batch]
        self.momentum_decay = config.momentum_decay
        options = dataclasses.asdict(method.options.of(config, model.feature_dim))
        self.loss: nn.Module = getattr(losses, method.loss)(**options)
        self.momentum_model: HashingModel | None = None
        if method.momentum_encoder:
            self.momentum_model = copy.deepcopy(model).requires_grad_(False)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the loss itself that the optimizer updates (the momentum encoder is not one)."""
        return [p for p in self.loss.parameters() if p.requires_grad]

    def forward(self, model: HashingModel, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The loss of this rank's views; the loss gathers its inputs from all ranks (training.distributed)."""
        return self.consume(self, model, view1, view2)

    def after_step(self, model: HashingModel) -> None:
        if self.momentum_model is not None:
            ema_update(self.momentum_model, model, self.momentum_decay)


# What each kind of batch feeds its loss. Two-view objectives run one pass per view, so batch-norm statistics
# never mix an image's two views (the reference code does the same); the pairing would otherwise be visible to
# the network through the batch.


def _codes(objective: Objective, model: HashingModel, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    h1, h2 = model(view1), model(view2)
    return objective.loss(gather(model.code_logits(h1)), gather(model.code_logits(h2)))


def _codes_and_bits(objective: Objective, model: HashingModel, view1: torch.Tensor,
                    view2: torch.Tensor) -> torch.Tensor:
    h1, h2 = model(view1), model(view2)
    return objective.loss(gather(model.code_logits(h1)), gather(model.code_logits(h2)),
                          gather(model.bit_logits(h2)), gather(model.bit_logits(h1)))


def _momentum_queue(objective: Objective, model: HashingModel, view1: torch.Tensor,
                    view2: torch.Tensor) -> torch.Tensor:
    h1, h2 = model(view1), model(view2)
    momentum = objective.momentum_model
    with torch.no_grad():
        momentum.train(model.training)
        k1, k2 = momentum(view1), momentum(view2)
        keys = momentum.code_logits(torch.cat([gather(k1), gather(k2)]))
    return objective.loss(gather(model.code_logits(h1)), gather(model.code_logits(h2)),
                          gather(model.bit_logits(k2)), gather(model.bit_logits(k1)), keys)


def _local_global(objective: Objective, model: HashingModel, view1: torch.Tensor,
                  view2: torch.Tensor) -> torch.Tensor:
    """Each view scored on its own: its feature map against its pooled feature (one gather: the global vector
    is the mean of the local map)."""
    def infomax(view: torch.Tensor) -> torch.Tensor:
        local = gather(model.feature_map(view))
        return objective.loss(local, local.mean(dim=(2, 3)))

    return (infomax(view1) + infomax(view2)) / 2


def _affine(objective: Objective, model: HashingModel, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    """The first view against a random affine transformation of it, whose parameters the loss regresses."""
    transformed, params = random_affine(view1)
    return objective.loss(model(view1), model(transformed), params)


BATCHES: dict[str, Callable[[Objective, HashingModel, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "codes": _codes, "codes_and_bits": _codes_and_bits, "momentum_queue": _momentum_queue,
    "local_global": _local_global, "affine": _affine,
}


class TrainStep(nn.Module):
    """The model and its objective as one module whose forward is the loss of a step.

    DistributedDataParallel wraps this, so it sees a single forward per step however many passes the
    objective makes.
    """

    def __init__(self, model: HashingModel, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        return self.objective(self.model, view1, view2)
