"""The packaged default model: small enough to ship, and its recorded mAP is reproducible on this CPU."""

import pytest

from nac_hash.checkpoint import default_checkpoint, load_checkpoint
from nac_hash.training.evaluate import evaluate


def test_default_model_is_small_and_describes_its_benchmark():
    path = default_checkpoint()
    assert path.stat().st_size <= 25 * 1024 * 1024
    model, sidecar = load_checkpoint(path)
    assert model.config.bits == 128 and model.config.image_size == 32
    assert sidecar["benchmark"]["protocol"] == "cifar10-nac" and sidecar["benchmark"]["map"] > 0


@pytest.mark.slow
def test_eval_reproduces_the_recorded_map(cifar_root, tmp_path):
    _, sidecar = load_checkpoint(default_checkpoint())
    results = evaluate(default_checkpoint(), tmp_path / "default.json", data_root=str(cifar_root), device="cpu")
    assert results["dataset"] == "CIFAR-10 (JPEG copy)" and results["split_seed"] == sidecar["split_seed"]
    scores = next(iter(results["methods"].values()))
    assert scores["map"] == pytest.approx(sidecar["benchmark"]["map"], abs=0.005)
    assert scores["num_queries"] == 10_000 and scores["database_size"] == 50_000
