"""Training objectives: NAC, its momentum-queue variant NAC-MQ, and SimCLR's NT-Xent baseline.

Shapes: K images per batch, two views each, D code bits. ``a1``/``a2`` are the code pre-activations
(K, D) of views 1 and 2; ``r1`` are the inference head's bit logits for view 1's code computed from view
2's feature, and ``r2`` the reverse. Losses compute in float32 whatever the autocast dtype of the inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def channel_weight(p: float) -> float:
    """lambda = 0.5 * log((1 - p) / p): the log-likelihood weight of a binary symmetric channel."""
    return 0.5 * math.log((1.0 - p) / p)


def channel_capacity_bits(bits: int, p: float) -> float:
    """D (1 - H(p)): how many bits a D-bit code can carry through a binary symmetric channel of flip probability p.

    NAC maximises a lower bound on I(X; noisy code), which this caps: with 128 bits and p = 0.4 it is 3.7 bits,
    so about 13 well-separated codewords already reach the cap and the objective has no reason to spread images
    over more (the collapse seen early in long p = 0.4 runs); p = 0.25 allows 24 bits, p = 0.1 68 bits.
    """
    entropy = -p * math.log2(p) - (1 - p) * math.log2(1 - p)
    return bits * (1 - entropy)


def sample_flip_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """{-1, +1} mask with each entry -1 (a bit flip) with probability p."""
    flips = torch.rand(shape, device=device, generator=generator) < p
    return 1.0 - 2.0 * flips.float()


def bernoulli_log_likelihood(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Q(y | x') - log(1/2^D) of a mean-field Bernoulli decoder, for relaxed codes y in [-1, 1].

    Summed over bits and measured against the uniform decoder (the constant the reference code adds), so it is
    0 for logits of 0; equal to sum_d log(2 sigmoid(y_d * r_d)) when y is exactly +-1.
    """
    log_variance = F.logsigmoid(logits) + F.logsigmoid(-logits) + 2 * math.log(2.0)
    return 0.5 * ((y * logits).sum(1) + log_variance.sum(1))


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """Upcast bf16/fp16 autocast outputs to float32; keep float32/float64 as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _noisy_codes(a1: torch.Tensor, a2: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor, p: float,
                 flip_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean relaxed codes z = tanh(a), the bit logits, and the noisy codes y = m * z, all (2K, D)."""
    z = torch.tanh(_full_precision(torch.cat([a1, a2])))
    logits = _full_precision(torch.cat([r1, r2]))
    if flip_mask is None:
        flip_mask = sample_flip_mask(z.shape, p, z.device)
    return z, logits, flip_mask.to(z.dtype) * z


def _negative_bound(y: torch.Tensor, logits: torch.Tensor, negatives: torch.Tensor, weight: float) -> torch.Tensor:
    """Per input: -log Q(y | x') + logsumexp_k(lambda * y . z_k) over the negative codes z_k.

    Outside autocast: a bf16 product would round the similarities (up to lambda * D) by several tenths.
    """
    with torch.autocast(y.device.type, enabled=False):
        return torch.logsumexp(weight * (y @ negatives.T), dim=1) - bernoulli_log_likelihood(y, logits)


def _check_flip_probability(p: float) -> None:
    if not 0.0 < p < 0.5:
        raise ValueError(f"flip probability p must lie in (0, 0.5), got {p}")


class NACLoss(nn.Module):
    """Negative NAC lower bound on I(X; noisy code), averaged over the 2K inputs (Park et al., ICML 2021).

    The negatives are all 2K clean relaxed codes of the batch, the input's own code included.
    """

    def __init__(self, p: float = 0.4) -> None:
        super().__init__()
        _check_flip_probability(p)
        self.p = p
        self.weight = channel_weight(p)

    def forward(self, a1: torch.Tensor, a2: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor,
                flip_mask: torch.Tensor | None = None) -> torch.Tensor:
        z, logits, y = _noisy_codes(a1, a2, r1, r2, self.p, flip_mask)
        return _negative_bound(y, logits, z, self.weight).mean()


class NACMQLoss(nn.Module):
    """NAC with negatives from a queue of momentum-encoder codes (NAC-MQ).

    ``r1``/``r2`` come from the momentum inference head and ``keys`` (2K, D) are the momentum encoder's code
    pre-activations of the same 2K inputs. The negatives are the current keys plus the queue; the keys are
    enqueued after the loss is computed. Unlike the reference code, the scores are multiplied by lambda in
    this path too, and an l2 penalty on z keeps the unnormalised codes from growing without bound.
    """

    queue: torch.Tensor
    filled: torch.Tensor
    cursor: torch.Tensor

    def __init__(self, bits: int, p: float = 0.4, queue_size: int = 5000, l2_weight: float = 0.1) -> None:
        super().__init__()
        _check_flip_probability(p)
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        if l2_weight < 0:
            raise ValueError(f"l2_weight must be non-negative, got {l2_weight}")
        self.p = p
        self.weight = channel_weight(p)
        self.l2_weight = l2_weight
        self.register_buffer("queue", torch.zeros(queue_size, bits))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, codes: torch.Tensor) -> None:
        """Write clean relaxed codes into the ring buffer, overwriting the oldest."""
        size = self.queue.shape[0]
        codes = codes[-size:]
        slots = (self.cursor + torch.arange(len(codes), device=codes.device)) % size
        self.queue[slots] = codes.to(self.queue.dtype)
        self.cursor.copy_((self.cursor + len(codes)) % size)
        self.filled.copy_(torch.clamp(self.filled + len(codes), max=size))

    def forward(self, a1: torch.Tensor, a2: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor,
                keys: torch.Tensor, flip_mask: torch.Tensor | None = None) -> torch.Tensor:
        z, logits, y = _noisy_codes(a1, a2, r1, r2, self.p, flip_mask)
        key_codes = torch.tanh(keys.detach().to(z.dtype))
        negatives = torch.cat([key_codes, self.queue[: int(self.filled)].to(z)])
        loss = (_negative_bound(y, logits, negatives, self.weight) + self.l2_weight * z.pow(2).sum(1)).mean()
        self.enqueue(key_codes)
        return loss


class NTXentLoss(nn.Module):
    """SimCLR's normalised-temperature cross entropy over 2K views, each view's partner as its positive."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
        z = F.normalize(_full_precision(torch.cat([a1, a2])), dim=1)
        n = len(a1)
        similarity = (z @ z.T) / self.temperature
        similarity.fill_diagonal_(float("-inf"))
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
        return F.cross_entropy(similarity, partner)


class DeepInfoMaxLoss(nn.Module):
    """Local Deep InfoMax (Hjelm et al., ICLR 2019) with the Jensen-Shannon estimator.

    Every cell of an image's local feature map should score high against that image's global vector and low
    against the global vectors of the other images in the batch. The scoring network is bilinear,
    T(c, e) = c . W e, the linear critic (Hjelm et al., ICLR 2019).
    """

    def __init__(self, local_dim: int, global_dim: int) -> None:
        super().__init__()
        self.critic = nn.Linear(global_dim, local_dim, bias=False)

    def forward(self, local_map: torch.Tensor, global_vector: torch.Tensor) -> torch.Tensor:
        """local_map: (N, C, M, M); global_vector: (N, G). Returns minus the JSD mutual-information bound."""
        cells = _full_precision(local_map).flatten(2)
        query = self.critic(_full_precision(global_vector)).float()
        scores = torch.einsum("ic,kcm->ikm", query, cells)  # image i's global vector vs image k's cells
        positive = torch.eye(len(scores), dtype=torch.bool, device=scores.device)[:, :, None].expand_as(scores)
        return F.softplus(-scores[positive]).mean() + F.softplus(scores[~positive]).mean()


class AETLoss(nn.Module):
    """Auto-Encoding Transformations (Zhang et al., CVPR 2019): regress the parameters of the transformation
    between two images from their features, with a decoder reading both features side by side.
    """

    def __init__(self, feature_dim: int, num_params: int = 6) -> None:
        super().__init__()
        self.decoder = nn.Sequential(nn.Linear(2 * feature_dim, feature_dim), nn.ReLU(inplace=True),
                                     nn.Linear(feature_dim, num_params))

    def forward(self, features: torch.Tensor, transformed_features: torch.Tensor,
                params: torch.Tensor) -> torch.Tensor:
        predicted = self.decoder(torch.cat([features, transformed_features], dim=1))
        return F.mse_loss(predicted.float(), params.float())
