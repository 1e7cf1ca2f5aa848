"""Encoders and heads of a NAC hashing model (Park et al., ICML 2021, section 3).

A backbone f maps images to a feature h; the projection head g maps h to the code pre-activations a,
whose signs are the hash code; the inference head phi reads the feature of the *other* view and predicts
logits for this view's code bits. Both heads' outputs are scaled by 1/sqrt(D), as in the reference code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from nac_hash.model_config import ModelConfig
from nac_hash.perceptual import MirrorInvariantDCTHash


def _resnet(name: str, small_stem: bool) -> tuple[nn.Module, int]:
    net = getattr(torchvision.models, name)(weights=None)
    if small_stem:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


class _SpatialMean(torch.autograd.Function):
    """(N, C, H, W) -> (N, C) mean whose backward writes a dense gradient in the input's memory format.

    ``x.mean((2, 3))``'s backward hands the layer before it a broadcast (stride-0) gradient, which the CPU's
    ReLU backward walks several times slower than a dense one; ``avg_pool2d`` over the whole map writes a dense
    one but its channels-last backward is slow itself. Spreading the gradient here costs one write of the map.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        ctx.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return x.mean((2, 3))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ctx.shape
        spread = (grad / (h * w))[:, :, None, None].expand(n, c, h, w)
        return spread.contiguous(memory_format=ctx.memory_format)


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): the spatial mean, as ``AdaptiveAvgPool2d(1)`` plus ``Flatten``, but faster to train
    (see :class:`_SpatialMean`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpatialMean.apply(x)


def _vgg16_bn() -> tuple[nn.Module, int]:
    """Conv part of VGG16-BN plus global average pooling (its first conv is already 3x3 stride 1)."""
    features = torchvision.models.vgg16_bn(weights=None).features
    return nn.Sequential(features, GlobalAvgPool()), 512


def _cnn_small(width: int, depth: int) -> tuple[nn.Module, int]:
    """A VGG-style 4-stage ReLU network small enough to train on a laptop CPU: ``depth`` 3x3 convolutions per
    stage, ``width`` channels in the first stage, doubled after each 2x2 max-pool.

    A stage's last ReLU comes after its max-pool: ReLU and max-pool commute (both keep the order of values), so
    outputs and gradients are those of ReLU-then-pool, and the ReLU touches a quarter of the values.
    """
    layers: list[nn.Module] = []
    channels = 3
    for stage in range(4):
        out = width << stage
        for conv in range(depth):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out)]
            if stage < 3 and conv == depth - 1:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.ReLU(True))
            channels = out
    return nn.Sequential(*layers, GlobalAvgPool()), channels


def build_backbone(config: ModelConfig) -> tuple[nn.Module, int]:
    """Return the backbone for ``config.arch`` and the size of the feature it outputs."""
    if config.arch == "vgg16_bn":
        return _vgg16_bn()
    if config.arch == "cnn_small":
        return _cnn_small(config.width, config.depth)
    return _resnet(config.arch, config.small_stem)


def _head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim))


class HashingModel(nn.Module):
    """Backbone, projection head g, (optionally) inference head phi and, for a copy model, a perceptual hash."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone, self.feature_dim = build_backbone(config)
        self.projection = _head(self.feature_dim, config.bits)
        self.inference = _head(self.feature_dim, config.bits) if config.inference_head else None
        if config.code_rotation:
            self.register_buffer("rotation_center", torch.zeros(self.rotation_width))
            self.register_buffer("rotation", torch.eye(self.rotation_width, config.bits))
        self.perceptual = (MirrorInvariantDCTHash(config.perceptual_bits, config.mean, config.std)
                           if config.perceptual_bits else None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, feature_dim) features h."""
        return self.backbone(images)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> the last convolutional map (N, feature_dim, M, M), before pooling.

        Its spatial mean is the feature h that :meth:`forward` returns (Deep InfoMax scores its cells).
        """
        if isinstance(self.backbone, torchvision.models.ResNet):
            net = self.backbone
            x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
            return net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return self.backbone[:-1](images)  # drop the global average pooling

    def code_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Features h -> code pre-activations a = g(h) / sqrt(D), or, for a model with a code rotation, its
        rotated input (ModelConfig.rotation_input); the hash code is their sign."""
        if self.config.code_rotation:
            return (self.rotation_input(features) - self.rotation_center) @ self.rotation
        return self.head_logits(features)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Features h -> the projection head's pre-activations a = g(h) / sqrt(D), unrotated."""
        return self.projection(features) / math.sqrt(self.config.bits)

    @property
    def rotation_width(self) -> int:
        """The size of :meth:`rotation_input`: the feature size, or the number of bits."""
        return self.feature_dim if self.config.rotation_input == "features" else self.config.bits

    def rotation_input(self, features: torch.Tensor) -> torch.Tensor:
        """What a code rotation is fitted on and applied to: unit-length features h, or the pre-activations."""
        if self.config.rotation_input == "features":
            return F.normalize(features, dim=1)
        return self.head_logits(features)

    def bit_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Features h of one view -> logits r = phi(h) / sqrt(D) of the other view's bits."""
        if self.inference is None:
            raise RuntimeError("this model was built without an inference head")
        return self.inference(features) / math.sqrt(self.config.bits)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images -> the code's scores: the learned pre-activations, then a copy model's perceptual
        scores (nac_hash.perceptual); their signs are the code's bits."""
        logits = self.code_logits(self(images)).float()
        if self.perceptual is None:
            return logits
        return torch.cat([logits, self.perceptual(images)], dim=1)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """target <- decay * target + (1 - decay) * source, for parameters; buffers are copied."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - decay)
    for t, s in zip(target.buffers(), source.buffers(), strict=True):
        t.copy_(s)
