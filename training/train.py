"""The training loop: data resident on the device as uint8, augmentations on the device, LARS, checkpoints.

Outputs in ``config.out_dir``:
  ``model.safetensors`` + ``model.json``  the latest model, loadable by ``nac-hash eval`` and the indexer;
  ``train_state.safetensors``            everything needed to resume (one file, so it is replaced atomically);
  ``split.npz``                          the protocol split the run used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from nac_hash.atomic import atomic_path
from nac_hash.baselines import NotEnoughDataError
from nac_hash.checkpoint import load_checkpoint, save_checkpoint
from nac_hash.inference import encode_images
from nac_hash.loss import channel_capacity_bits
from nac_hash.metrics import evaluate_retrieval
from nac_hash.model_config import CIFAR10_MEAN, CIFAR10_STD, ModelConfig
from nac_hash.models import HashingModel
from nac_hash.progress import progress_bar
from nac_hash.provenance import provenance
from nac_hash.training.allocator import keep_freed_memory
from nac_hash.training.augment import augment
from nac_hash.training.budget import BudgetClock
from nac_hash.training.config import TrainConfig
from nac_hash.training.datasets import ImageSet, load_dataset
from nac_hash.training.distributed import World, agree, close_world, init_world, local_slice, sync_batch_norm, wrap
from nac_hash.training.methods import FEATURE_METHODS, METHODS
from nac_hash.training.neighbours import REFRESH_EPOCHS, nearest_neighbours, partners
from nac_hash.training.objective import Objective, TrainStep
from nac_hash.training.optim import LARS, clock_warmup_cosine, warmup_cosine
from nac_hash.training.precision import training_dtype, warn_if_emulated
from nac_hash.training.rotation import with_code_rotation
from nac_hash.training.splits import Split, get_protocol, make_split, save_split
from nac_hash.transforms import normalize

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.safetensors"
MIN_STEPS_PER_EPOCH = 10
MIN_BATCH = 32  # NAC's negatives are the batch's other codes
HEAD_FIT_STEPS = 600  # fitting a fresh inference head to a loaded encoder (fit_inference_head)
HEAD_FIT_LR = 1e-3
LEG_FIELDS = ("command", "epochs_completed", "flip_probability", "git_commit", "hardware", "created")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
    return device


@dataclasses.dataclass
class Run:
    """The mutable pieces of one training run."""

    config: TrainConfig
    device: torch.device
    model: HashingModel
    objective: Objective
    optimizer: LARS
    scheduler: torch.optim.lr_scheduler.LambdaLR
    epoch: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    origin: dict = dataclasses.field(default_factory=dict)  # command, commit, hardware at the start of the run
    earlier_legs: list[dict] = dataclasses.field(default_factory=list)  # the runs that made --init-from's model
    clock: BudgetClock | None = None  # set when the run has a time budget
    neighbours: torch.Tensor | None = None  # (N, K) nearest training images, with --positive-neighbours

    def keeps_training(self) -> bool:
        """Another epoch: below the epoch count, or, on a time budget, while one more epoch fits in it."""
        if self.clock is None:
            return self.epoch < self.config.epochs
        return self.clock.fits_another_epoch()


def build_run(config: TrainConfig, device: torch.device, steps_per_epoch: int, world: World | None = None,
              clock: BudgetClock | None = None, model_config: ModelConfig | None = None,
              init_from: HashingModel | None = None) -> Run:
    """A run's model, objective, optimizer and schedule; the model starts from ``init_from``'s encoder if given
    (see :func:`initial_model`)."""
    model_config = model_config or config.model_config()
    model = HashingModel(model_config)
    if init_from is not None:  # before the objective copies the model (NAC-MQ's momentum encoder)
        trained = ("backbone.", "projection.")
        model.load_state_dict({k: v for k, v in init_from.state_dict().items() if k.startswith(trained)},
                              strict=False)
    model = sync_batch_norm(model, world or World(), device).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = Objective(config, model).to(device)
    optimizer = LARS([*model.parameters(), *objective.trainable_parameters()], lr=config.lr, momentum=config.momentum,
                     weight_decay=config.weight_decay, trust_coefficient=config.trust_coefficient)
    if clock is None:
        scheduler = warmup_cosine(optimizer, config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch)
    else:
        scheduler = clock_warmup_cosine(optimizer, clock.fraction, config.warmup_share)
    return Run(config, device, model, objective, optimizer, scheduler, clock=clock)


def save_state(run: Run, path: Path) -> None:
    """Model, objective (momentum encoder, queue) and optimizer tensors with the scalars as metadata."""
    tensors = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    tensors |= {f"objective.{k}": v for k, v in run.objective.state_dict().items()}
    optimizer_state = run.optimizer.state_dict()
    for index, state in optimizer_state["state"].items():
        tensors |= {f"optimizer.{index}.{k}": v for k, v in state.items()}
    if run.neighbours is not None:
        tensors["neighbours"] = run.neighbours
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {
        "epoch": run.epoch,
        "history": run.history,
        "scheduler": run.scheduler.state_dict(),
        "param_groups": optimizer_state["param_groups"],
        "config": dataclasses.asdict(run.config),
        "elapsed_s": run.clock.elapsed_s if run.clock else None,
        "earlier_legs": run.earlier_legs,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"state": json.dumps(metadata)})


def load_state(run: Run, path: Path) -> None:
    with safe_open(str(path), framework="pt") as f:
        metadata = json.loads(f.metadata()["state"])
    tensors = load_file(str(path), device=str(run.device))

    def section(prefix: str) -> dict:
        return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}

    run.model.load_state_dict(section("model."))
    run.objective.load_state_dict(section("objective."))
    state: dict[int, dict] = {}
    for key, value in section("optimizer.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    run.optimizer.load_state_dict({"state": state, "param_groups": metadata["param_groups"]})
    run.scheduler.load_state_dict(metadata["scheduler"])
    run.epoch, run.history = metadata["epoch"], metadata["history"]
    run.earlier_legs = metadata.get("earlier_legs", [])
    run.neighbours = tensors.get("neighbours")
    if run.clock is not None and metadata.get("elapsed_s") is not None:
        run.clock.restore(metadata["elapsed_s"])


def initial_model(config: TrainConfig) -> tuple[HashingModel, list[dict]]:
    """The model ``--init-from`` names, checked to have this run's shape, with the runs that trained it
    (:func:`training_legs`). Its backbone and projection head start the run (build_run); an exported model has
    no inference head (and maybe an ITQ rotation, which training does not use), so the run's own head stays
    fresh."""
    source, sidecar = load_checkpoint(config.init_from)
    ours = config.model_config()
    shape = ("arch", "width", "depth", "bits", "image_size")
    differ = [f"{name} {getattr(source.config, name)} != {getattr(ours, name)}" for name in shape
              if getattr(source.config, name) != getattr(ours, name)]
    if differ:
        raise ValueError(f"--init-from {config.init_from} is another model than this run's: {', '.join(differ)}")
    return source, training_legs(sidecar)


def training_legs(sidecar: dict) -> list[dict]:
    """The training runs that made a checkpoint, oldest first: the legs it records from its own ``--init-from``,
    then itself, so that a model trained in legs keeps every leg's command."""
    own = {key: sidecar[key] for key in LEG_FIELDS if key in sidecar}
    return [*sidecar.get("earlier_legs", []), own]


def quick_eval(model: HashingModel, data: ImageSet, split: Split, queries: int, map_k: int | None) -> dict:
    """mAP of the first ``queries`` queries against the whole database (a cheap estimate during training)."""
    query = split.query[:queries]
    codes = encode_images(model, data.images[np.concatenate([query, split.database])])
    metrics = evaluate_retrieval(codes[: len(query)], codes[len(query):], data.labels[query],
                                 data.labels[split.database], map_ks=(map_k or 1000,), precision_ks=())
    model.train()
    return {"map": metrics.protocol_map(map_k), "tie_aware_map": metrics.tie_aware_map,
            "distinct_codes": metrics.distinct_database_codes}


def two_views(batch: torch.Tensor, config: TrainConfig, model_config: ModelConfig,
              generator: torch.Generator | None = None, second: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmentations of a uint8 batch (the second of ``second``, the images' partners, where
    given), normalised with the model's statistics, in the memory format the model trains in."""
    augment_config = config.augment_config()
    views = [normalize(augment(images, augment_config, generator), model_config.mean, model_config.std)
             for images in (batch, batch if second is None else second)]
    if config.channels_last:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    return views[0], views[1]


def optimize(run: Run, step: torch.nn.Module, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    """One optimizer step on a pair of views; ``step`` is the run's TrainStep, maybe wrapped (DDP, compile)."""
    loss = descend(run, step, run.optimizer, view1, view2)
    run.scheduler.step()
    run.objective.after_step(run.model)
    return loss


def descend(run: Run, step: torch.nn.Module, optimizer: torch.optim.Optimizer, view1: torch.Tensor,
            view2: torch.Tensor) -> torch.Tensor:
    """The loss of a pair of views, in the run's precision, and one step of ``optimizer`` down its gradient."""
    dtype = training_dtype(run.device, run.config.precision)
    with torch.autocast(run.device.type, dtype=dtype, enabled=dtype is not None):
        loss = step(view1, view2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def fit_inference_head(run: Run, images: torch.Tensor, batch_size: int, generator: torch.Generator,
                       progress: bool) -> None:
    """Fit a fresh inference head to an encoder loaded by ``--init-from``, the encoder frozen meanwhile.

    Trained together from the head's random start, the head's first gradients scramble the encoder it was
    given: in a probe from the shipped model, mAP fell from 0.277 to 0.19 in one epoch and had recovered to
    only 0.24 forty epochs later. With the head fitted first the loaded encoder's mAP is kept. Under torchrun
    every process draws the same batches (same seed, no DistributedDataParallel), so the heads stay equal.
    """
    if run.model.inference is None:
        return
    encoder = [p for name, p in run.model.named_parameters() if not name.startswith("inference.")]
    for parameter in encoder:
        parameter.requires_grad_(False)
    optimizer = torch.optim.Adam(run.model.inference.parameters(), lr=HEAD_FIT_LR)
    step = TrainStep(run.model, run.objective)
    for _ in progress_bar(range(HEAD_FIT_STEPS), desc="fitting the inference head", disable=not progress):
        batch = images[torch.randint(len(images), (batch_size,), device=images.device, generator=generator)]
        descend(run, step, optimizer, *two_views(batch, run.config, run.model.config, generator))
    for parameter in encoder:
        parameter.requires_grad_(True)


def train(config: TrainConfig, progress: bool = True, now: Callable[[], float] = time.perf_counter) -> Path:
    """Train a model as ``config`` says; returns the path of the final model checkpoint.

    Under torchrun each process trains on its share of every batch (see :mod:`nac_hash.training.distributed`).
    ``now`` is the clock a time budget runs on.
    """
    world, device = init_world(resolve_device(config.device))
    warn_if_emulated(device, config.precision)
    if device.type == "cpu":
        keep_freed_memory()
    try:
        return _train(config, world, device, progress and world.is_main, now)
    finally:
        close_world(world)


@dataclasses.dataclass
class Session:
    """What one process's training loop works on: the run, its data and split, and how it steps."""

    run: Run
    world: World
    data: ImageSet
    split: Split
    map_k: int | None
    images: torch.Tensor  # the training images, uint8 on the device
    batch_size: int
    rows: slice  # this rank's share of each batch
    step: torch.nn.Module  # the model and its objective, wrapped for DDP or compiled
    out: Path
    now: Callable[[], float]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.batch_size


def _train(config: TrainConfig, world: World, device: torch.device, progress: bool,
           now: Callable[[], float]) -> Path:
    session = start_session(config, world, device, progress, now)
    run = session.run
    bar = progress_bar(total=(config.epochs - run.epoch) * session.steps_per_epoch if run.clock is None else None,
                       disable=not progress, unit="step")
    run.model.train()
    # Asked once an epoch: a second reading of the clock could end the loop just after an epoch that was
    # not told it is the last, and so never wrote the final model.
    finished = not agree(world, run.keeps_training())
    while not finished:
        loss = train_epoch(session, bar)
        finished = end_epoch(session, loss, bar)
    bar.close()
    if run.epoch == 0:  # only a time budget ends a run before its first epoch
        raise ValueError(f"the time budget of {config.time_budget} ran out before the first epoch, so no model was "
                         "written: give a longer --time-budget")
    return session.out / MODEL_FILE


def start_session(config: TrainConfig, world: World, device: torch.device, progress: bool,
                  now: Callable[[], float]) -> Session:
    """Read the data and split it, build or resume the run, and wrap its step."""
    clock = BudgetClock(config.time_budget_s, now) if config.time_budget_s else None  # counts from here
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resuming = config.resume and (out / STATE_FILE).is_file()
    # Read before the data, so that a wrong file fails at once; and before seeding, so that the run draws as one
    # from scratch would.
    init_from, earlier_legs = initial_model(config) if config.init_from and not resuming else (None, [])
    torch.manual_seed(config.seed)
    data = load_dataset(config.dataset, config.data_root, config.image_size)
    protocol = get_protocol(config.protocol)
    split = make_split(protocol, data.labels, data.is_test, config.split_seed, config.queries, config.train_images,
                       data.class_names)
    logger.info("%s, protocol %s: %d queries, %d database images, %d training images", data.description,
                protocol.name, len(split.query), len(split.database), len(split.train))
    warn_if_the_channel_is_too_narrow(config, len(data.images))
    if world.is_main:
        save_split(split, out / "split.npz")
    images = torch.from_numpy(data.images[split.train]).permute(0, 3, 1, 2).contiguous().to(device)
    batch_size = epoch_batch(config.batch_size, len(images), world.size)
    steps_per_epoch = len(images) // batch_size
    # CIFAR-10 keeps its published statistics; any other data is normalised with its training images' own.
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if config.dataset == "cifar10" else image_statistics(images)
    run = build_run(config, device, steps_per_epoch, world, clock, config.model_config(mean, std), init_from)
    run.origin, run.earlier_legs = provenance(device), earlier_legs
    if resuming:
        load_state(run, out / STATE_FILE)
        logger.info("resumed from %s at epoch %d", out / STATE_FILE, run.epoch)
    elif init_from is not None:
        logger.info("starting from the encoder of %s", config.init_from)
        fit_inference_head(run, images, batch_size, torch.Generator(device).manual_seed(config.seed), progress)
    step = wrap(TrainStep(run.model, run.objective), world, device,
                find_unused_parameters=config.method in FEATURE_METHODS)
    if config.compile:
        step = torch.compile(step)
    if world.is_main:
        length = f"a time budget of {config.time_budget}" if clock else f"{config.epochs} epochs"
        logger.info("training %s/%s on %d images (%s) for %s, batch %d, %d steps/epoch on %s x %d", config.method,
                    config.arch, len(images), data.description, length, batch_size, steps_per_epoch, device,
                    world.size)
    return Session(run, world, data, split, protocol.map_k, images, batch_size, local_slice(world, batch_size),
                   step, out, now)


def train_epoch(session: Session, bar: tqdm) -> torch.Tensor:
    """One pass over the training images; returns the last step's loss."""
    run, config, images, batch_size = session.run, session.run.config, session.images, session.batch_size
    # Seeding every epoch from (seed, epoch) makes a resumed run draw the same batches, crops and flip masks
    # as an uninterrupted one.
    epoch_seed = config.seed * 1_000_003 + run.epoch
    torch.manual_seed(epoch_seed)
    generator = torch.Generator(run.device).manual_seed(epoch_seed)
    order = torch.randperm(len(images), device=run.device, generator=generator)  # the same on every rank
    if session.world.distributed:  # but each rank draws its own augmentations
        generator.manual_seed(epoch_seed + 7919 * session.world.rank)
    started = session.now()
    refresh_neighbours(session)
    for step in range(session.steps_per_epoch):
        index = order[step * batch_size : (step + 1) * batch_size][session.rows]
        second = None
        if run.neighbours is not None:
            second = images[partners(index, run.neighbours, config.neighbour_share, generator)]
        loss = optimize(run, session.step, *two_views(images[index], config, run.model.config, generator, second))
        bar.update()
        if step == session.steps_per_epoch - 1 or step % 10 == 0:
            bar.set_postfix(epoch=run.epoch + 1, loss=f"{loss.item():.4f}",
                            img_s=f"{(step + 1) * batch_size / max(session.now() - started, 1e-9):.0f}")
    run.epoch += 1
    if run.clock is not None:
        run.clock.record_epoch(session.now() - started)
    return loss


def refresh_neighbours(session: Session) -> None:
    """Find each training image's nearest neighbours with --positive-neighbours: at the start, then every
    REFRESH_EPOCHS epochs (the training state keeps them, so a resumed run pairs as an uninterrupted one)."""
    run = session.run
    if run.config.positive_neighbours and (run.neighbours is None or run.epoch % REFRESH_EPOCHS == 0):
        train = session.images.permute(0, 2, 3, 1)  # the images the session already holds, as (N, S, S, 3)
        run.neighbours = nearest_neighbours(run.model, train, run.config.positive_neighbours).to(run.device)


def end_epoch(session: Session, loss: torch.Tensor, bar: tqdm) -> bool:
    """Pace the time budget, then save and evaluate as due; returns whether the run has finished."""
    run, config, split = session.run, session.run.config, session.split
    if run.clock is not None:
        # Encoding for the rotation and the final evaluation costs about a quarter of a training pass per
        # image, or less, when the views are full-size; smaller views make training, not encoding, cheaper.
        encode_share = (config.image_size / config.view_size) ** 2 / 4
        run.clock.reserve_s = (final_encodings(split, config) * encode_share * run.clock.mean_epoch_s()
                               / len(session.images))
        bar.total = bar.n + run.clock.epochs_left() * session.steps_per_epoch  # the ETA follows the pace
    finished = not agree(session.world, run.keeps_training())
    if not session.world.is_main:
        return finished
    if run.epoch % config.checkpoint_every == 0 or finished:
        save_state(run, session.out / STATE_FILE)
        if finished:  # the training state above keeps the model as trained, for a later, longer run
            run.model = rotated_for_search(run.model, session.data.images, split.train, config.fit_rotation)
        save_model(run, session.out / MODEL_FILE)
    if (config.eval_every and run.epoch % config.eval_every == 0) or finished:
        evaluate_epoch(run, session.data, split, session.map_k, float(loss.item()))
        save_model(run, session.out / MODEL_FILE)  # again, now with the evaluation in its history
    return finished


def rotated_for_search(model: HashingModel, images: np.ndarray, train: np.ndarray, rotation_input: str
                       ) -> HashingModel:
    """``model`` with the ITQ rotation of ``rotation_input`` fitted on ``images[train]`` (training.rotation), or
    as it is for ``none`` or too few images to fit one. The training images are gathered only for a fit."""
    if rotation_input == "none":
        return model
    try:
        return with_code_rotation(model, images[train], rotation_input)
    except NotEnoughDataError as e:
        logger.info("no ITQ rotation: %s; the codes stay the signs of the pre-activations", e)
        return model


def epoch_batch(batch_size: int, images: int, processes: int = 1) -> int:
    """The batch a run trains with: ``batch_size``, but at most a ``MIN_STEPS_PER_EPOCH``-th of the images.

    A small folder would otherwise get one or two steps per epoch and, on a time budget, too few updates to
    spread its codes (benchmarks/results/probes/digits-probes.json); the CIFAR recipe, 5,000
    images at batch 500, already has ten. The result is a multiple of ``processes`` (each takes a share).
    """
    batch = min(batch_size, max(MIN_BATCH, images // MIN_STEPS_PER_EPOCH), images)
    return max(processes, batch // processes * processes)


def image_statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std, in [0, 1] units, of (N, 3, H, W) uint8 images."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for chunk in images.split(4096):  # in chunks: a float copy of 50,000 images would take 1.2 GB
        pixels = chunk.to("cpu", torch.float64).div_(255).transpose(0, 1).reshape(3, -1)
        total += pixels.sum(dim=1)
        squares += pixels.square().sum(dim=1)
    count = images.numel() / 3
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=1e-6).sqrt()  # a constant channel must not divide by 0
    return tuple(mean.tolist()), tuple(std.tolist())


def warn_if_the_channel_is_too_narrow(config: TrainConfig, images: int) -> None:
    """NAC's objective cannot tell apart more codewords than its channel carries (channel_capacity_bits).

    Not said of a run from a trained encoder (``--init-from``): its codes are spread already and stay spread
    (from the shipped model at p = 0.4, 49,958 distinct codes of 50,000 after 240 epochs).
    """
    if not METHODS[config.method].noisy_channel or config.init_from:
        return
    capacity = channel_capacity_bits(config.bits, config.flip_probability)
    if capacity < math.log2(max(images, 2)):
        logger.warning("with %d bits and p = %g the noisy channel carries %.1f bits, fewer than the %.1f bits that "
                       "tell %d images apart: the codes will crowd into few codewords until late in training; "
                       "lower --flip-probability", config.bits, config.flip_probability, capacity,
                       math.log2(images), images)


def final_encodings(split: Split, config: TrainConfig) -> int:
    """Images the end of a run encodes: the training images for a rotation, then a quick evaluation's."""
    rotation = len(split.train) if config.fit_rotation != "none" else 0
    return rotation + min(len(split.query), config.eval_queries) + len(split.database)


def evaluate_epoch(run: Run, data: ImageSet, split: Split, map_k: int | None, loss: float) -> None:
    """Append a quick evaluation to the run's history; skipped when the split has no queries."""
    if len(split.query) == 0:
        logger.info("epoch %d: loss %.4f (no queries to evaluate)", run.epoch, loss)
        return
    scores = quick_eval(run.model, data, split, run.config.eval_queries, map_k)
    run.history.append({"epoch": run.epoch, "loss": loss, **scores})
    logger.info("epoch %d: %s", run.epoch, run.history[-1])


def save_model(run: Run, path: Path, dtype: torch.dtype = torch.float32) -> Path:
    """The model checkpoint with the run's configuration and provenance in its JSON sidecar."""
    metadata = {
        "method": run.config.method,
        "protocol": run.config.protocol,
        "dataset": run.config.dataset,
        "split_seed": run.config.split_seed,
        "flip_probability": run.config.flip_probability,
        "epochs_completed": run.epoch,
        "training": dataclasses.asdict(run.config),
        "history": run.history,
        "earlier_legs": run.earlier_legs,
        **run.origin,
    }
    return save_checkpoint(run.model, path, metadata, dtype=dtype)
