"""What a model is: architecture, code length, input size and normalisation, stored in every checkpoint.

Kept apart from :mod:`nac_hash.models` so that configurations and command-line help load without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nac_hash.codes import validate_bits

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
ARCHITECTURES = ("vgg16_bn", "resnet18", "resnet50", "cnn_small")
CNN_SMALL_WIDTH = 32
ROTATION_INPUTS = ("logits", "features")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and its input transform, stored in every checkpoint.

    ``code_rotation``: the codes are the signs of (x - center) @ R rather than of the pre-activations a, with an
    ITQ projection R fitted on the training images after training (``nac-hash export --itq``). ``rotation_input``
    says what x is: ``logits``, the pre-activations a (R is a D x D rotation), or ``features``, the backbone
    features h scaled to unit length (R projects them to D dimensions and rotates; the projection head is then
    unused).
    ``width`` and ``depth`` shape cnn_small only: the channels of its first stage (doubled at each of its four
    stages) and the convolutions per stage.
    ``perceptual_bits``: a copy model's code ends with this many bits of a fixed, mirror-invariant DCT hash of
    the input (nac_hash.perceptual), after the ``bits`` learned ones; ``code_bits`` counts both.
    """

    arch: str = "vgg16_bn"
    bits: int = 128
    image_size: int = 32
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD
    inference_head: bool = True
    code_rotation: bool = False
    rotation_input: str = "logits"
    width: int = CNN_SMALL_WIDTH
    depth: int = 1
    perceptual_bits: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        validate_bits(self.bits)
        if self.perceptual_bits:
            validate_bits(self.perceptual_bits)
            validate_bits(self.code_bits)
        if self.rotation_input not in ROTATION_INPUTS:
            raise ValueError(f"rotation_input must be one of {', '.join(ROTATION_INPUTS)}, got {self.rotation_input!r}")
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be positive, got {self.width} and {self.depth}")
        if self.arch != "cnn_small" and (self.width, self.depth) != (CNN_SMALL_WIDTH, 1):
            raise ValueError(f"width and depth shape cnn_small only; {self.arch} has a fixed shape")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        # JSON gives lists back; keep tuples so configs compare equal after a round trip.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def code_bits(self) -> int:
        """The length of the code: the learned bits, then the perceptual ones."""
        return self.bits + self.perceptual_bits

    @property
    def small_stem(self) -> bool:
        """ResNets on images up to 64 px use a 3x3 stride-1 first conv and no max-pool."""
        return self.image_size <= 64

    def to_dict(self) -> dict:
        return asdict(self)
