"""The training configuration: one typed dataclass, filled from defaults < YAML file < command line.

Every field is a command-line option of ``nac-hash train`` (``epochs`` -> ``--epochs``,
``flip_probability`` -> ``--flip-probability``), so the YAML file, the CLI and the checkpoint's record of
the run all use the same names.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from nac_hash.models import ARCHITECTURES, CIFAR10_MEAN, CIFAR10_STD, ModelConfig
from nac_hash.options import add_dataclass_arguments, set_fields
from training.augment import AugmentConfig
from training.budget import parse_duration
from training.datasets import LOADERS
from training.splits import PROTOCOLS

METHODS = ("nac", "nac_mq", "simclr", "dim", "aet")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_WARMUP_SHARE = 0.05


@dataclass
class TrainConfig:
    # data and protocol
    dataset: str = "cifar10"
    data_root: str = "data/CIFAR-10-images"
    protocol: str = "cifar10-nac"
    split_seed: int = 0
    queries: int | None = None  # override the protocol's query count (per class for per-class protocols)
    train_images: int | None = None  # override the protocol's training-image count, likewise
    # model
    arch: str = "vgg16_bn"
    bits: int = 128
    image_size: int = 32
    # objective
    method: str = "nac"
    flip_probability: float = 0.4
    temperature: float = 0.5  # simclr only
    queue_size: int = 5000  # nac_mq only
    momentum_decay: float = 0.99  # nac_mq only
    l2_weight: float = 0.1  # nac_mq only
    # optimisation (LARS, warm-up then cosine)
    epochs: int = 2000
    batch_size: int = 1000
    lr: float = 3.0
    weight_decay: float = 1e-6
    momentum: float = 0.9
    trust_coefficient: float = 0.001
    warmup_epochs: int | None = None  # None: 5% of the epochs
    time_budget: str | None = None  # e.g. 30m or 2h: the schedule follows the clock (training.budget), epochs unused
    # augmentation
    crop_scale_min: float = 0.08
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    # run
    out_dir: str = "runs/nac"
    device: str = "auto"
    compile: bool = False
    channels_last: bool = True
    precision: str = "auto"  # auto: bf16 autocast on CUDA and on CPUs with native bf16, else fp32; or fp32, bf16
    seed: int = 0
    eval_every: int = 0  # epochs between quick evaluations; 0 evaluates once, at the end
    eval_queries: int = 1000  # queries used by the quick evaluations (the database is always whole)
    checkpoint_every: int = 50
    resume: bool = True

    def __post_init__(self) -> None:
        choices = {"dataset": LOADERS, "protocol": PROTOCOLS, "method": METHODS, "arch": ARCHITECTURES,
                   "precision": PRECISIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        positive = ("epochs", "batch_size", "lr", "image_size", "checkpoint_every", "eval_queries")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.warmup_epochs is None:
            self.warmup_epochs = round(DEFAULT_WARMUP_SHARE * self.epochs)
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"--warmup-epochs must lie in [0, --epochs = {self.epochs}], got {self.warmup_epochs}")
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        if not 0 < self.crop_scale_min <= 1:
            raise ValueError(f"crop_scale_min must lie in (0, 1], got {self.crop_scale_min}")
        self.model_config()  # validates arch, bits and image size

    @property
    def warmup_share(self) -> float:
        """The share of the run spent warming up (of the epochs, or of the time budget)."""
        return self.warmup_epochs / self.epochs

    @property
    def time_budget_s(self) -> float | None:
        return None if self.time_budget is None else parse_duration(self.time_budget)

    def model_config(self) -> ModelConfig:
        return ModelConfig(arch=self.arch, bits=self.bits, image_size=self.image_size,
                           mean=CIFAR10_MEAN, std=CIFAR10_STD, inference_head=self.method in ("nac", "nac_mq"))

    def augment_config(self) -> AugmentConfig:
        return AugmentConfig(size=self.image_size, crop_scale=(self.crop_scale_min, 1.0),
                             brightness=self.brightness, contrast=self.contrast, saturation=self.saturation,
                             hue=self.hue, jitter_probability=self.jitter_probability,
                             grayscale_probability=self.grayscale_probability)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one option per TrainConfig field."""
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig fields")
    add_dataclass_arguments(parser, TrainConfig)


def load_config(path: Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file's fields, then ``overrides`` whose value is not None."""
    values: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of TrainConfig fields")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training options: {', '.join(unknown)}")
    return TrainConfig(**values)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return load_config(args.config, set_fields(TrainConfig, args))
