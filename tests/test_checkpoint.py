import json

import numpy as np
import pytest
import torch

from nac_hash.checkpoint import (
    CheckpointError,
    export_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel


def small_model() -> HashingModel:
    torch.manual_seed(0)
    return HashingModel(ModelConfig(arch="cnn_small", bits=32, image_size=24)).eval()


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = small_model()
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"split_seed": 3})
    loaded, sidecar = load_checkpoint(path)
    assert loaded.config == model.config and sidecar["split_seed"] == 3
    x = torch.randn(2, 3, 24, 24)
    assert torch.allclose(loaded.encode(x), model.encode(x))


def test_fp16_checkpoint_is_half_the_size_and_loads_as_float32(tmp_path):
    model = small_model()
    full = save_checkpoint(model, tmp_path / "full.safetensors")
    half = save_checkpoint(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, sidecar = load_checkpoint(half)
    assert sidecar["dtype"] == "float16" and next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 24, 24)
    assert torch.allclose(loaded.encode(x), model.encode(x), atol=1e-2)


def test_tampered_or_incomplete_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(small_model(), tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(path)


def test_config_that_does_not_fit_the_weights_is_refused(tmp_path):
    path = save_checkpoint(small_model(), tmp_path / "m.safetensors")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["model"]["bits"] = 64
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_export_drops_the_inference_head_and_keeps_codes(tmp_path):
    model = small_model()
    source = save_checkpoint(model, tmp_path / "m.safetensors", {"split_seed": 5})
    exported, sidecar = load_checkpoint(export_checkpoint(source, tmp_path / "e.safetensors", {"note": 1}))
    assert exported.inference is None and not exported.config.inference_head
    assert sidecar["split_seed"] == 5 and sidecar["note"] == 1 and sidecar["dtype"] == "float16"
    x = torch.randn(64, 3, 24, 24)
    assert ((exported.encode(x) > 0) == (model.encode(x) > 0)).float().mean() > 0.99


def test_atomic_writes_replace_whole_files_with_normal_permissions(tmp_path):
    from nac_hash.atomic import atomic_path, write_json

    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o044  # readable by group/others under the usual umask


@pytest.mark.parametrize("rotation_input", ["logits", "features"])
def test_itq_code_rotation_survives_export_and_matches_itq(class_folders, tmp_path, rotation_input):
    from nac_hash.baselines import ITQ
    from nac_hash.checkpoint import export_model
    from nac_hash.inference import code_logits, embed_images, encode_images
    from nac_hash.training.rotation import with_code_rotation

    model = HashingModel(ModelConfig(arch="cnn_small", bits=16)).eval()
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    rotated = with_code_rotation(model, images, rotation_input)
    if rotation_input == "logits":
        inputs = code_logits(model, images)
    else:
        features = embed_images(model, images)
        inputs = features / np.linalg.norm(features, axis=1, keepdims=True)
    expected = ITQ(16, seed=0).fit(inputs).encode(inputs)
    np.testing.assert_array_equal(encode_images(rotated, images), expected)
    for name, value in model.state_dict().items():  # the backbone's weights and statistics carry over
        torch.testing.assert_close(rotated.state_dict()[name], value)
    with pytest.raises(ValueError, match="already"):
        with_code_rotation(rotated, images)

    path = export_model(rotated, {}, tmp_path / "rotated.safetensors", dtype=torch.float32)
    loaded, sidecar = load_checkpoint(path)
    assert sidecar["model"]["code_rotation"] and loaded.inference is None
    np.testing.assert_array_equal(encode_images(loaded, images), expected)
