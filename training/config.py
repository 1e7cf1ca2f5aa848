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

from nac_hash.model_config import (
    ARCHITECTURES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CNN_SMALL_WIDTH,
    ROTATION_INPUTS,
    ModelConfig,
)
from nac_hash.options import add_dataclass_arguments, set_fields
from nac_hash.training.budget import parse_duration
from nac_hash.training.datasets import LOADERS
from nac_hash.training.methods import METHODS
from nac_hash.training.splits import PROTOCOLS, default_protocol

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_WARMUP_SHARE = 0.05
CIFAR10_ROOT = "data/CIFAR-10-images"  # where the quickstart unpacks the CIFAR-10 JPEG copy
# What arch, batch_size and flip_probability default to. The GPU recipe is the paper's hashing recipe; the CPU
# one trains the shipped default model (README, results table): a network and batch that a 2-core CPU runs
# at about 2,000 images/s in bf16, and the flip probability that scored best at 150 CPU epochs. Any other
# folder, on any device, gets p = 0.1, crops of at least a quarter of the image, and a run that ends with an ITQ
# rotation of the backbone's unit-length features stored in the model: on a budget of minutes the signs of
# the pre-activations stay crowded, while the backbone's features already rank well (the code readouts in
# benchmarks/results/probes/code-readouts-cifar-folder-30m.json, on the 30-minute CIFAR-10 folder run).
# Read that way, crops down to 25% beat crops down to 50% and the paper's 8% on the digits (three seeds each).
#
# ``view_share`` is the side of the training views as a share of --image-size, where --view-size is not given.
# On a CPU, views of 24 of the 32 pixels train at 1.75x the images/s and, after the same 150 epochs on
# cifar10-nac, scored higher than full-size ones (benchmarks/results/probes/view-size-*.json); the GPU recipe
# keeps the paper's full-size views.
RECIPES = {
    "gpu": {"arch": "vgg16_bn", "batch_size": 1000, "flip_probability": 0.4, "crop_scale_min": 0.08,
            "fit_rotation": "none", "view_share": 1.0},
    "cpu": {"arch": "cnn_small", "batch_size": 500, "flip_probability": 0.25, "crop_scale_min": 0.08,
            "fit_rotation": "none", "view_share": 0.75},
    # A folder's runs are minutes long: on a GPU the paper's recipe collapsed the 8x8 digits to one code in a
    # minute, where this one keeps them apart (benchmarks/results/gpu-h200/digits-cuda-*.json).
    "folder": {"arch": "cnn_small", "batch_size": 500, "flip_probability": 0.1, "crop_scale_min": 0.25,
               "fit_rotation": "features", "view_share": 0.75},
}
FIT_ROTATIONS = ("none", *ROTATION_INPUTS)


@dataclass
class AugmentOptions:
    """The augmentation settings a run can change (options of ``nac-hash train``, inherited by TrainConfig)."""

    crop_scale_min: float = 0.08
    mirror_probability: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    degrade_probability: float = 0.0


@dataclass
class AugmentConfig(AugmentOptions):
    """Everything :func:`nac_hash.training.augment.augment` needs: the options plus the fixed parts."""

    size: int = 32
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)


@dataclass
class TrainConfig(AugmentOptions):
    """One training run. Every field is an option of ``nac-hash train`` and a key of its ``--config`` YAML.

    Attributes:
        dataset: cifar10, flickr25k or folder (any image folder; see training.datasets for its layouts).
        data_root: the dataset's folder.
        protocol: how images split into queries, database and training pool: cifar10-nac, cifar10-i,
            cifar10-ii, flickr25k or folder; None takes the dataset's own (folder for a folder).
        split_seed: seed of the protocol's split.
        queries: queries per class (all queries for flickr25k); None takes the protocol's (for a folder, a
            tenth of the smallest class, at most 1,000).
        train_images: training images per class (in all for flickr25k); None takes the protocol's (for a
            folder, every image that is not a query).
        arch: encoder: cnn_small (CPU-sized), vgg16_bn, resnet18 or resnet50; None takes the recipe (RECIPES:
            cnn_small for a folder and on a CPU, vgg16_bn for CIFAR-10 and FLICKR-25K on a GPU).
        width: cnn_small's channels in its first stage, doubled at each of its four stages.
        depth: cnn_small's 3x3 convolutions per stage.
        bits: code length, a multiple of 8 from 16 to 256.
        image_size: input size in pixels (images are centre-cropped square and resized).
        view_size: size in pixels of the training views (the random resized crops); None takes the recipe's
            share of --image-size (RECIPES: three quarters on a CPU and for a folder, all of it on a GPU).
            The model still encodes images at --image-size: smaller views cost less per step, and with random
            resized crops a network trained on them ranks full-size images as well or better (Touvron et al.,
            "Fixing the train-test resolution discrepancy", NeurIPS 2019).
        method: objective: nac, nac_mq, simclr, dim or aet.
        flip_probability: NAC's bit-flip probability p, in (0, 0.5); None takes the recipe (RECIPES).
        temperature: SimCLR's softmax temperature.
        queue_size: NAC-MQ's queue of negative codes.
        momentum_decay: NAC-MQ's EMA decay of the momentum encoder.
        l2_weight: NAC-MQ's weight of the squared code norm.
        positive_neighbours: draw the second view of an image from one of its K nearest training images (by
            the model's own codes, recomputed every 10 epochs) instead of from the image itself, for a share
            --neighbour-share of the images (training.neighbours); 0 pairs every image with itself.
        neighbour_share: the share of images paired with a neighbour when --positive-neighbours is above 0.
        epochs: passes over the training images (unused with --time-budget).
        batch_size: images per step (each yields two augmented views); None takes the device's recipe. A run
            uses at most a tenth of its training images per step (training.train.epoch_batch).
        lr: LARS base learning rate.
        weight_decay: LARS weight decay.
        momentum: LARS momentum.
        trust_coefficient: LARS trust coefficient.
        warmup_epochs: linear warm-up before the cosine decay; None is 5% of --epochs (of the budget with
            --time-budget).
        time_budget: train for this long (90s, 30m, 2h) instead of --epochs: warm-up and decay follow the
            clock and the run, final evaluation included, ends on time.
        crop_scale_min: smallest area share of the random resized crop; None takes the recipe.
        mirror_probability: chance of a horizontal mirror per view (0 for text, digits, anything handed).
        brightness: colour-jitter strength.
        contrast: colour-jitter strength.
        saturation: colour-jitter strength.
        hue: colour-jitter strength.
        jitter_probability: chance of colour jitter per view.
        grayscale_probability: chance of grayscale per view.
        degrade_probability: chance of each copy-style edit per view (rotation, rescale, blur, JPEG, a strip;
            training.degrade): 0 for retrieval; above 0 for codes meant to find edited copies.
        fit_rotation: when the run ends, fit an ITQ rotation on the training images and store it in the model
            (as ``nac-hash export --itq``): of the pre-activations (logits), of the backbone's unit-length
            features (features), or none; None takes the recipe (features for a folder on a CPU, else none).
            Skipped, with a log line, when there are fewer training images than bits.
        out_dir: folder for the model, training state and split; a run there resumes unless --no-resume.
        device: auto (CUDA when available), cpu or cuda.
        compile: torch.compile the training step.
        channels_last: train in the channels-last memory format (faster on CPUs and GPUs).
        precision: auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16.
        seed: seed of weights, batches and augmentations.
        eval_every: epochs between quick evaluations; 0 evaluates once, at the end.
        eval_queries: queries of a quick evaluation (the database is always whole).
        checkpoint_every: epochs between checkpoints.
        resume: resume from the last checkpoint in --out-dir.
        init_from: start from this model checkpoint's backbone and projection head (the shipped default,
            nac_hash/assets/default.safetensors, or any run's model.safetensors of the same shape); a fresh
            inference head is fitted to them first, with them frozen, then all train on a fresh optimizer
            and schedule. Ignored when the run resumes.
    """

    crop_scale_min: float | None = None  # AugmentOptions' field, left to the recipe here
    dataset: str = "cifar10"
    data_root: str = CIFAR10_ROOT
    protocol: str | None = None
    split_seed: int = 0
    queries: int | None = None
    train_images: int | None = None
    arch: str | None = None
    width: int = CNN_SMALL_WIDTH
    depth: int = 1
    bits: int = 128
    image_size: int = 32
    view_size: int | None = None
    method: str = "nac"
    flip_probability: float | None = None
    temperature: float = 0.5
    queue_size: int = 5000
    momentum_decay: float = 0.99
    l2_weight: float = 0.1
    positive_neighbours: int = 0
    neighbour_share: float = 0.5
    epochs: int = 2000
    batch_size: int | None = None
    lr: float = 3.0
    weight_decay: float = 1e-6
    momentum: float = 0.9
    trust_coefficient: float = 0.001
    warmup_epochs: int | None = None
    time_budget: str | None = None
    fit_rotation: str | None = None
    out_dir: str = "runs/nac"
    device: str = "auto"
    compile: bool = False
    channels_last: bool = True
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 0
    eval_queries: int = 1000
    checkpoint_every: int = 50
    resume: bool = True
    init_from: str | None = None

    def __post_init__(self) -> None:
        recipe = dict(RECIPES[self.recipe()])
        view_share = recipe.pop("view_share")
        for name, value in recipe.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.view_size is None:
            self.view_size = max(16, round(view_share * self.image_size))
        if self.protocol is None:
            self.protocol = default_protocol(self.dataset) if self.dataset in LOADERS else "cifar10-nac"
        choices = {"dataset": LOADERS, "protocol": PROTOCOLS, "method": METHODS, "arch": ARCHITECTURES,
                   "precision": PRECISIONS, "fit_rotation": FIT_ROTATIONS}
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
        if self.view_size < 16:
            raise ValueError(f"view_size must be at least 16 pixels, got {self.view_size}")
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        if not 0 < self.crop_scale_min <= 1:
            raise ValueError(f"crop_scale_min must lie in (0, 1], got {self.crop_scale_min}")
        if self.positive_neighbours < 0:
            raise ValueError(f"positive_neighbours must be 0 or more, got {self.positive_neighbours}")
        for name in ("mirror_probability", "degrade_probability", "neighbour_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        self.model_config()  # validates arch, bits and image size

    def recipe(self) -> str:
        """The RECIPES entry that fills the fields left None."""
        if self.dataset == "folder":
            return "folder"
        return "gpu" if self.uses_gpu() else "cpu"

    def uses_gpu(self) -> bool:
        if self.device == "auto":
            import torch

            return torch.cuda.is_available()
        return self.device.startswith("cuda")

    @property
    def warmup_share(self) -> float:
        """The share of the run spent warming up (of the epochs, or of the time budget)."""
        return self.warmup_epochs / self.epochs

    @property
    def time_budget_s(self) -> float | None:
        return None if self.time_budget is None else parse_duration(self.time_budget)

    def model_config(self, mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD) -> ModelConfig:
        """The model this run trains; ``mean`` and ``std`` are its training images' (training.train)."""
        return ModelConfig(arch=self.arch, bits=self.bits, image_size=self.image_size, mean=mean, std=std,
                           inference_head=METHODS[self.method].inference_head, width=self.width, depth=self.depth)

    def augment_config(self) -> AugmentConfig:
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(AugmentOptions)}
        return AugmentConfig(size=self.view_size, **options)


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
