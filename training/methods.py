"""The training objectives, in one registry: each entry owns its loss, the typed options of that loss, and the
batch the loss consumes.

Adding an objective is one entry here plus its loss class in :mod:`nac_hash.loss`; a loss that reads a new
kind of batch also adds that kind to :mod:`nac_hash.training.objective`'s ``BATCHES``. The registry imports no
torch, so configurations validate and command-line help loads without it: a loss is named by its class in
:mod:`nac_hash.loss`, which the objective resolves once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class LossOptions(Protocol):
    """A loss's keyword arguments, built from a run's config and the backbone's feature size."""

    @classmethod
    def of(cls, config: Any, feature_dim: int) -> LossOptions: ...


@dataclass(frozen=True)
class NACOptions:
    p: float

    @classmethod
    def of(cls, config: Any, feature_dim: int) -> NACOptions:
        return cls(p=config.flip_probability)


@dataclass(frozen=True)
class NACMQOptions:
    bits: int
    p: float
    queue_size: int
    l2_weight: float

    @classmethod
    def of(cls, config: Any, feature_dim: int) -> NACMQOptions:
        return cls(bits=config.bits, p=config.flip_probability, queue_size=config.queue_size,
                   l2_weight=config.l2_weight)


@dataclass(frozen=True)
class NTXentOptions:
    temperature: float

    @classmethod
    def of(cls, config: Any, feature_dim: int) -> NTXentOptions:
        return cls(temperature=config.temperature)


@dataclass(frozen=True)
class InfoMaxOptions:
    local_dim: int
    global_dim: int

    @classmethod
    def of(cls, config: Any, feature_dim: int) -> InfoMaxOptions:
        return cls(local_dim=feature_dim, global_dim=feature_dim)


@dataclass(frozen=True)
class AETOptions:
    feature_dim: int

    @classmethod
    def of(cls, config: Any, feature_dim: int) -> AETOptions:
        return cls(feature_dim=feature_dim)


@dataclass(frozen=True)
class Method:
    """How one objective trains.

    Attributes:
        loss: the loss class's name in nac_hash.loss.
        options: the loss's options, a dataclass built from the run's config (its fields are the keyword
            arguments of the loss).
        batch: what the loss consumes, a key of nac_hash.training.objective.BATCHES: codes (both views'
            pre-activations), codes_and_bits (plus each view's bit logits from the other view's feature),
            momentum_queue (as codes_and_bits, with a momentum encoder's codes as negatives), local_global (a
            view's feature map and pooled feature) or affine (features of a view and of a random affine
            transformation of it).
        inference_head: the model carries NAC's inference head phi.
        hashes_features: it learns features, hashed with ITQ by the benchmarks; the code head gets no gradient.
        noisy_channel: its codes pass NAC's bit-flip channel, whose capacity bounds how many it tells apart.
        momentum_encoder: it keeps an exponential moving average of the model (whose codes its batch reads).
    """

    loss: str
    options: type[LossOptions]
    batch: str
    inference_head: bool = False
    hashes_features: bool = False
    noisy_channel: bool = False
    momentum_encoder: bool = False


METHODS: dict[str, Method] = {
    "nac": Method("NACLoss", NACOptions, "codes_and_bits", inference_head=True, noisy_channel=True),
    "nac_mq": Method("NACMQLoss", NACMQOptions, "momentum_queue", inference_head=True, noisy_channel=True,
                     momentum_encoder=True),
    "simclr": Method("NTXentLoss", NTXentOptions, "codes"),
    "dim": Method("DeepInfoMaxLoss", InfoMaxOptions, "local_global", hashes_features=True),
    "aet": Method("AETLoss", AETOptions, "affine", hashes_features=True),
}
FEATURE_METHODS = tuple(name for name, method in METHODS.items() if method.hashes_features)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]
