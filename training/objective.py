"""Maps the configured method to a loss over two augmented views of a batch.

NAC, NAC-MQ and SimCLR compare the two views; Deep InfoMax (``dim``) scores each view on its own and AET
(``aet``) regresses a random affine transformation applied to the first view. DIM and AET learn features,
not codes: benchmarks hash their features with ITQ.
"""

from __future__ import annotations

import copy

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
        self.inputs = method.inputs
        self.momentum_decay = config.momentum_decay
        self.loss: nn.Module = getattr(losses, method.loss)(**method.options(config, model.feature_dim))
        self.momentum_model: HashingModel | None = None
        if self.inputs == "momentum_queue":
            self.momentum_model = copy.deepcopy(model).requires_grad_(False)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the loss itself that the optimizer updates (the momentum encoder is not one)."""
        return [p for p in self.loss.parameters() if p.requires_grad]

    def forward(self, model: HashingModel, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The loss of this rank's views; the loss gathers its inputs from all ranks (training.distributed)."""
        if self.inputs == "local_global":
            return (self._infomax(model, view1) + self._infomax(model, view2)) / 2
        if self.inputs == "affine":
            transformed, params = random_affine(view1)
            return self.loss(model(view1), model(transformed), params)
        # One pass per view, so batch-norm statistics never mix an image's two views (the reference code
        # does the same); the pairing would otherwise be visible to the network through the batch.
        h1, h2 = model(view1), model(view2)
        a1, a2 = gather(model.code_logits(h1)), gather(model.code_logits(h2))
        if self.inputs == "codes":
            return self.loss(a1, a2)
        if self.inputs == "codes_and_bits":
            return self.loss(a1, a2, gather(model.bit_logits(h2)), gather(model.bit_logits(h1)))
        with torch.no_grad():
            self.momentum_model.train(model.training)
            k1, k2 = self.momentum_model(view1), self.momentum_model(view2)
            keys = self.momentum_model.code_logits(torch.cat([gather(k1), gather(k2)]))
        return self.loss(a1, a2, gather(model.bit_logits(k2)), gather(model.bit_logits(k1)), keys)

    def _infomax(self, model: HashingModel, view: torch.Tensor) -> torch.Tensor:
        local = gather(model.feature_map(view))  # one gather: the global vector is the mean of the local map
        return self.loss(local, local.mean(dim=(2, 3)))

    def after_step(self, model: HashingModel) -> None:
        if self.momentum_model is not None:
            ema_update(self.momentum_model, model, self.momentum_decay)


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
