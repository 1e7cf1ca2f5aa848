"""Self-describing checkpoints: weights as safetensors plus a JSON sidecar (never pickle).

``model.safetensors`` holds the tensors; ``model.json`` beside it holds the model config (architecture,
code length, input size, normalisation), the SHA-256 of the weights file and whatever provenance the
caller adds (training command, git commit, split seed, ...). That is enough to rebuild the model and its
input transform without the training config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nac_hash.atomic import atomic_path, write_json
from nac_hash.errors import NacHashError
from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel

FORMAT_VERSION = 1


class CheckpointError(NacHashError):
    """A checkpoint is missing, incomplete, corrupt or of an unknown format."""


# The models shipped inside the package, by the names that stand for them wherever a checkpoint is asked for:
# the retrieval model (search, index, the service) and the copy-detection model (nac-hash dedup).
PACKAGED_MODELS = ("default", "copies")


def packaged_checkpoint(name: str) -> Path:
    """The weights file of the packaged model ``name`` (a key of PACKAGED_MODELS)."""
    if name not in PACKAGED_MODELS:
        raise CheckpointError(f"no packaged model {name!r}; the packaged models are {', '.join(PACKAGED_MODELS)}")
    return Path(str(resources.files("nac_hash") / "assets" / f"{name}.safetensors"))


def default_checkpoint() -> Path:
    """The default model shipped inside the package: the retrieval model."""
    return packaged_checkpoint("default")


def copy_checkpoint() -> Path:
    """The copy-detection model shipped inside the package (nac-hash dedup's default)."""
    return packaged_checkpoint("copies")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for a checkpoint named by either file, by their common stem, or by the name of a
    packaged model (PACKAGED_MODELS) where no such file or stem exists."""
    path = Path(path)
    if str(path) in PACKAGED_MODELS and not path.with_suffix(".json").exists():
        path = packaged_checkpoint(str(path))
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: HashingModel, path: str | Path, metadata: dict | None = None,
                    dtype: torch.dtype = torch.float32) -> Path:
    """Write ``model`` (floating tensors cast to ``dtype``) and its sidecar atomically; return the weights path."""
    weights_path, sidecar_path = checkpoint_paths(path)
    tensors = {
        name: (t.to(dtype) if t.is_floating_point() else t).detach().cpu().contiguous()
        for name, t in model.state_dict().items()
    }
    with atomic_path(weights_path) as tmp:
        save_file(tensors, str(tmp))
    sidecar = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "dtype": str(dtype).removeprefix("torch."),
        "weights_sha256": file_sha256(weights_path),
        **(metadata or {}),
    }
    write_json(sidecar_path, sidecar)
    return weights_path


def export_checkpoint(source: str | Path, target: str | Path, metadata: dict | None = None,
                      dtype: torch.dtype = torch.float16, perceptual_bits: int = 0) -> Path:
    """Re-save a checkpoint for inference only: weights cast to ``dtype``, the inference head dropped, and
    ``perceptual_bits`` bits of a mirror-invariant DCT hash appended to its codes (a copy model; 0: none).

    The inference head only serves training; encoding needs the backbone and the projection head.
    """
    return export_model(*load_checkpoint(source), target, metadata, dtype, perceptual_bits)


def export_model(model: HashingModel, sidecar: dict, target: str | Path, metadata: dict | None = None,
                 dtype: torch.dtype = torch.float16, perceptual_bits: int = 0) -> Path:
    """:func:`export_checkpoint` of a loaded model (with the sidecar it came with)."""
    config = dataclasses.replace(model.config, inference_head=False, perceptual_bits=perceptual_bits)
    inference_only = HashingModel(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("inference.")}
    inference_only.load_state_dict(state)
    kept = {k: v for k, v in sidecar.items() if k not in ("format_version", "model", "dtype", "weights_sha256")}
    return save_checkpoint(inference_only, target, {**kept, **(metadata or {})}, dtype=dtype)


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar of a checkpoint, checked for format version."""
    _, sidecar_path = checkpoint_paths(path)
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint config {sidecar_path} not found") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint config {sidecar_path} is not valid JSON: {e}") from e
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{sidecar_path}: unsupported checkpoint format {sidecar.get('format_version')!r}")
    return sidecar


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[HashingModel, dict]:
    """Rebuild a float32 model in eval mode from a checkpoint; return it with its sidecar."""
    weights_path, _ = checkpoint_paths(path)
    sidecar = read_sidecar(path)
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint weights {weights_path} not found")
    if file_sha256(weights_path) != sidecar.get("weights_sha256"):
        raise CheckpointError(f"{weights_path} does not match the hash recorded in its JSON config")
    try:
        config = ModelConfig(**sidecar["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{weights_path}: invalid model config: {e}") from e
    model = HashingModel(config)
    state = {name: t.float() if t.is_floating_point() else t for name, t in load_file(weights_path).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{weights_path}: weights do not fit the model config: {e}") from e
    return model.to(device).eval(), sidecar
