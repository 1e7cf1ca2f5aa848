"""End-to-end: `nac-hash train` and `nac-hash eval` on a small generated folder, on the CPU."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import nac_hash.training.train
from nac_hash.checkpoint import load_checkpoint
from nac_hash.cli import main
from nac_hash.training.config import load_config
from nac_hash.training.train import build_run, epoch_batch, fit_inference_head, initial_model, train


def train_args(data_root, out_dir, epochs: int, method: str = "nac") -> list[str]:
    return ["train", "--dataset", "folder", "--data-root", str(data_root), "--queries", "4",
            "--train-images", "8", "--arch", "cnn_small", "--bits", "16", "--method", method,
            "--epochs", str(epochs), "--warmup-epochs", "1", "--batch-size", "12", "--eval-every", "1",
            "--checkpoint-every", "1", "--eval-queries", "6", "--out-dir", str(out_dir), "--device", "cpu"]


def test_train_writes_a_self_describing_checkpoint_and_eval_scores_it(class_folders, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(class_folders, out, epochs=2)) == 0
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["model"]["arch"] == "cnn_small" and sidecar["model"]["bits"] == 16
    # A folder's model is normalised with its own training images' statistics, not CIFAR-10's.
    pixels = np.stack([np.asarray(Image.open(p)) for p in class_folders.rglob("*.png")]) / 255
    np.testing.assert_allclose(sidecar["model"]["mean"], pixels.mean(axis=(0, 1, 2)), atol=0.05)
    np.testing.assert_allclose(sidecar["model"]["std"], pixels.std(axis=(0, 1, 2)), rtol=0.2)
    assert sidecar["epochs_completed"] == 2 and sidecar["split_seed"] == 0
    assert [h["epoch"] for h in sidecar["history"]] == [1, 2]
    assert {"command", "git_commit", "hardware"} <= sidecar.keys()
    assert sidecar["hardware"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert (out / "split.npz").is_file() and (out / "train_state.safetensors").is_file()
    # A folder's run ends with the ITQ rotation of the unit-length features in the model it ships, while the
    # training state keeps the model as trained.
    assert sidecar["model"]["code_rotation"] and sidecar["model"]["rotation_input"] == "features"
    assert "rotation" in load_file(out / "model.safetensors")
    assert not any("rotation" in name for name in load_file(out / "train_state.safetensors"))

    results_path = tmp_path / "results.json"
    # No --data-root: eval reads the folder, protocol and split sizes the checkpoint records.
    assert main(["eval", str(out / "model.safetensors"), "--out", str(results_path), "--baselines", "lsh,itq,phash",
                 "--device", "cpu"]) == 0
    results = json.loads(results_path.read_text())
    assert results["protocol"] == "folder" and results["metric"] == "mAP@all"
    assert results["dataset"] == "folder images (classes layout)"
    assert set(results["methods"]) == {"nac", "lsh", "itq", "phash"}
    for scores in results["methods"].values():
        assert 0 <= scores["map_all"] <= 1 and scores["num_queries"] == 12 and scores["database_size"] == 24
        assert {"map@1000", "tie_aware_map", "precision@1000", "distinct_codes", "pr_curve"} <= scores.keys()
    assert (tmp_path / "results.split.npz").is_file()


# The last case pairs images with their nearest neighbours: the pairs of the resumed epoch 3 come from the model
# of epoch 0, which only the training state still knows.
@pytest.mark.parametrize(("method", "extra"), [("nac", {}), ("nac_mq", {}), ("dim", {}), ("aet", {}),
                                               ("nac", {"positive_neighbours": 2})])
def test_resumed_run_equals_an_uninterrupted_one(class_folders, tmp_path, method, extra, monkeypatch):
    def config(out, epochs=3):
        overrides = {"dataset": "folder", "data_root": str(class_folders), "queries": 4, "train_images": 8,
                     "arch": "cnn_small", "bits": 16, "method": method, "epochs": epochs, "warmup_epochs": 1,
                     "batch_size": 12, "out_dir": str(out), "device": "cpu", "queue_size": 48,
                     "checkpoint_every": 1, **extra}
        return load_config(None, overrides)

    straight = train(config(tmp_path / "straight"), progress=False)

    def save_then_die(run, path):
        saved = real_save_model(run, path)
        if run.epoch == 2:
            raise KeyboardInterrupt  # killed right after the epoch-2 checkpoint
        return saved

    real_save_model = nac_hash.training.train.save_model
    monkeypatch.setattr(nac_hash.training.train, "save_model", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "resumed"), progress=False)
    monkeypatch.setattr(nac_hash.training.train, "save_model", real_save_model)
    resumed = train(config(tmp_path / "resumed"), progress=False)
    a, b = load_file(straight), load_file(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name].float() - b[name].float()).abs().max() < 1e-5, name
    sidecar = json.loads(resumed.with_suffix(".json").read_text())
    assert sidecar["epochs_completed"] == 3


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("epochs: 700\nlr: 0.5\n")
    config = load_config(path, {"lr": 1.5, "bits": None})
    assert (config.epochs, config.lr, config.bits) == (700, 1.5, 128)
    path.write_text("epoch: 7\n")
    with pytest.raises(ValueError, match="unknown training options: epoch"):
        load_config(path)


def test_a_folder_gets_its_own_recipe_on_any_device_and_small_sets_smaller_batches():
    cifar, folder = load_config(None, {"device": "cpu"}), load_config(None, {"device": "cpu", "dataset": "folder"})
    gpu_cifar, gpu_folder = (load_config(None, {"device": "cuda", "dataset": name}) for name in ("cifar10", "folder"))
    assert (gpu_cifar.arch, gpu_cifar.flip_probability) == ("vgg16_bn", 0.4)
    assert (gpu_folder.arch, gpu_folder.flip_probability, gpu_folder.fit_rotation) == ("cnn_small", 0.1, "features")
    assert (cifar.flip_probability, cifar.crop_scale_min) == (0.25, 0.08)
    assert (folder.flip_probability, folder.crop_scale_min) == (0.1, 0.25)
    assert (cifar.fit_rotation, folder.fit_rotation) == ("none", "features")
    with pytest.raises(ValueError, match="fit_rotation"):
        load_config(None, {"fit_rotation": "pixels"})
    assert folder.augment_config().crop_scale_min == 0.25
    assert load_config(None, {"device": "cpu", "dataset": "folder", "flip_probability": 0.3}).flip_probability == 0.3
    assert epoch_batch(500, 5_000) == 500  # the CIFAR recipe already has ten steps per epoch
    assert epoch_batch(500, 1_570) == 157
    assert epoch_batch(500, 1_570, processes=4) == 156
    assert epoch_batch(500, 100) == 32 and epoch_batch(500, 20) == 20


def test_cli_reports_user_errors_without_a_traceback(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.safetensors")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["train", "--method", "byol", "--out-dir", str(tmp_path)]) == 2
    assert "method must be one of" in capsys.readouterr().err


def test_export_with_itq_fits_on_the_recorded_training_images(class_folders, tmp_path):
    out = tmp_path / "run"
    assert main([*train_args(class_folders, out, epochs=1), "--fit-rotation", "none"]) == 0
    assert not json.loads((out / "model.json").read_text())["model"]["code_rotation"]
    assert main(["export", str(out / "model.safetensors"), "--out", str(tmp_path / "x.safetensors"), "--itq"]) == 0
    sidecar = json.loads((tmp_path / "x.json").read_text())
    assert sidecar["model"]["code_rotation"] and not sidecar["model"]["inference_head"]
    assert sidecar["training"]["data_root"] == str(class_folders)
    assert main(["export", str(out / "model.safetensors"), "--out", str(tmp_path / "f.safetensors"),
                 "--itq", "features"]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["model"]["rotation_input"] == "features"


def test_export_with_itq_refuses_a_rotated_model_before_reading_images(class_folders, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*train_args(class_folders, out, epochs=1), "--fit-rotation", "features"]) == 0
    sidecar = json.loads((out / "model.json").read_text())
    sidecar["training"]["data_root"] = str(tmp_path / "gone")
    (out / "model.json").write_text(json.dumps(sidecar))
    assert main(["export", str(out / "model.safetensors"), "--out", str(tmp_path / "x.safetensors"), "--itq"]) == 2
    assert "has a code rotation already" in capsys.readouterr().err


def test_a_too_noisy_channel_is_warned_about(class_folders, tmp_path, caplog):
    args = [*train_args(class_folders, tmp_path / "noisy", epochs=1), "--flip-probability", "0.45"]
    with caplog.at_level("WARNING", logger="nac_hash.training.train"):
        assert main(args) == 0
    assert "lower --flip-probability" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="nac_hash.training.train"):
        assert main([*train_args(class_folders, tmp_path / "fine", epochs=1), "--flip-probability", "0.05"]) == 0
    assert "lower --flip-probability" not in caplog.text


def test_init_from_starts_from_a_models_encoder_and_fits_only_the_fresh_head(class_folders, tmp_path, monkeypatch):
    source = tmp_path / "source"
    assert main(train_args(class_folders, source, epochs=1)) == 0  # ships a rotation and no inference head
    trained, _ = load_checkpoint(source / "model.safetensors")
    config = load_config(None, {"dataset": "folder", "data_root": str(class_folders), "arch": "cnn_small",
                                "bits": 16, "init_from": str(source / "model.safetensors"), "device": "cpu"})
    source_model, earlier_legs = initial_model(config)
    run = build_run(config, torch.device("cpu"), steps_per_epoch=1, init_from=source_model)
    loaded = run.model.state_dict()
    for name, weights in trained.state_dict().items():
        if name.startswith(("backbone.", "projection.")):
            assert torch.equal(loaded[name], weights), name
    before = {name: p.clone() for name, p in run.model.named_parameters()}
    monkeypatch.setattr(nac_hash.training.train, "HEAD_FIT_STEPS", 5)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    fit_inference_head(run, images, 8, torch.Generator().manual_seed(0), progress=False)
    for name, p in run.model.named_parameters():
        assert p.requires_grad, name
        assert torch.equal(p, before[name]) != name.startswith("inference."), name

    assert main([*train_args(class_folders, tmp_path / "tuned", epochs=2), "--init-from",
                 str(source / "model.safetensors")]) == 0
    assert main([*train_args(class_folders, tmp_path / "tuned-again", epochs=1), "--init-from",
                 str(tmp_path / "tuned" / "model.safetensors")]) == 0
    legs = json.loads((tmp_path / "tuned-again" / "model.json").read_text())["earlier_legs"]
    assert [leg["epochs_completed"] for leg in legs] == [1, 2]  # the source's leg, then the first tuned leg's
    assert all({"command", "git_commit", "hardware", "created"} <= leg.keys() for leg in legs)
    assert earlier_legs == legs[:1]
    config.bits = 32
    with pytest.raises(ValueError, match="bits 16 != 32"):
        initial_model(config)
