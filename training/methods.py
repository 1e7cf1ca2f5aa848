"""The training objectives, in one registry: what a method's loss is built from and how its model is used.

Adding an objective is one entry here plus its loss class in :mod:`nac_hash.loss`, provided it reads its inputs
like an existing one (``inputs``, dispatched by :class:`nac_hash.training.objective.Objective`). The registry
imports no torch, so configurations validate and command-line help loads without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

INPUTS = ("codes", "codes_and_bits", "momentum_queue", "local_global", "affine")


@dataclass(frozen=True)
class Method:
    """How one objective trains.

    Attributes:
        loss: the loss class's name in nac_hash.loss.
        options: the loss's keyword arguments from the run's config and the backbone's feature size.
        inputs: what the loss reads: codes (both views' pre-activations), codes_and_bits (plus each view's
            bit logits from the other view's feature), momentum_queue (as codes_and_bits, with a momentum
            encoder's codes as negatives), local_global (a view's feature map and pooled feature) or affine
            (features of a view and of a random affine transformation of it).
        inference_head: the model carries NAC's inference head phi.
        hashes_features: it learns features, hashed with ITQ by the benchmarks; the code head gets no gradient.
    """

    loss: str
    options: Callable[[Any, int], dict]
    inputs: str
    inference_head: bool = False
    hashes_features: bool = False


METHODS: dict[str, Method] = {
    "nac": Method("NACLoss", lambda c, d: {"p": c.flip_probability}, "codes_and_bits", inference_head=True),
    "nac_mq": Method("NACMQLoss", lambda c, d: {"bits": c.bits, "p": c.flip_probability, "queue_size": c.queue_size,
                                                "l2_weight": c.l2_weight}, "momentum_queue", inference_head=True),
    "simclr": Method("NTXentLoss", lambda c, d: {"temperature": c.temperature}, "codes"),
    "dim": Method("DeepInfoMaxLoss", lambda c, d: {"local_dim": d, "global_dim": d}, "local_global",
                  hashes_features=True),
    "aet": Method("AETLoss", lambda c, d: {"feature_dim": d}, "affine", hashes_features=True),
}
FEATURE_METHODS = tuple(name for name, method in METHODS.items() if method.hashes_features)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]
