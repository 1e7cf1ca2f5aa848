"""A served index rebuilt with another model: the service follows the new model, or stops answering with the
reason; it never searches or writes with codes of one model in another model's index. Old catalogs are closed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from nac_hash.checkpoint import default_checkpoint, load_checkpoint, save_checkpoint
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import add, build
from nac_hash.index_data.search import Searcher
from nac_hash.index_data.store import CheckpointMismatchError
from nac_hash.service.app import create_app
from nac_hash.service.settings import Settings


def other_model(path: Path, seed: int) -> Path:
    """The default model with its code layer's weights redrawn: same shape, other codes."""
    model, _ = load_checkpoint(default_checkpoint())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weights in model.named_parameters():
            if name.startswith("projection"):
                weights.copy_(torch.randn(weights.shape, generator=generator) * weights.std())
    return save_checkpoint(model, path)


def rebuild(folder: Path, index: Path, checkpoint: Path) -> None:
    build([folder], index, IndexOptions(checkpoint=str(checkpoint), progress=False))


@pytest.fixture
def client(index: Path):
    with TestClient(create_app(Settings(index=index, refresh_s=1e-6))) as client:
        yield client


def top_hit(client: TestClient, image: Path) -> dict:
    response = client.post("/search", files={"image": ("q.png", image.read_bytes(), "image/png")}, data={"k": "1"})
    assert response.status_code == 200, response.text
    return response.json()["hits"][0]


def test_a_rebuild_with_another_model_is_followed(client, index, class_folders, tmp_path):
    query = class_folders / "class2" / "0003.png"
    assert top_hit(client, query)["distance"] == 0
    rebuild(class_folders, index, other_model(tmp_path / "other.safetensors", seed=1))
    hit = top_hit(client, query)  # with the old model this image sat dozens of bits from its own new code
    assert hit["distance"] == 0 and hit["path"] == "class2/0003.png"
    assert client.get("/readyz").status_code == 200


def test_a_model_that_cannot_be_loaded_stops_searches_and_writes(client, index, class_folders, tmp_path):
    other = other_model(tmp_path / "other.safetensors", seed=2)
    rebuild(class_folders, index, other)
    other.unlink()  # the index records a model this service can no longer load
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "cannot be loaded" in ready.json()["detail"]
    query = (class_folders / "class0" / "0001.png").read_bytes()
    assert client.post("/search", files={"image": ("q.png", query, "image/png")}).status_code == 503
    service = client.app.state.service
    items_before = service.searcher.store.catalog.count()
    with pytest.raises(Exception, match="cannot be loaded"):
        service.add_image(query)
    assert service.searcher.store.catalog.count() == items_before


def test_an_upload_after_a_rebuild_is_encoded_by_the_new_model(index, class_folders, tmp_path):
    other = other_model(tmp_path / "other.safetensors", seed=3)
    with TestClient(create_app(Settings(index=index, refresh_s=3600, allow_open_writes=True))) as client:
        rebuild(class_folders, index, other)  # the service has not looked yet: its next write catches up
        upload = (class_folders / "class1" / "0005.png").read_bytes()
        service = client.app.state.service
        item = service.add_image(upload + b"\0")  # other bytes, same pixels: a new item
        _, code = service.item(item.id)
    searcher = Searcher.open(index)  # the model the index records: other
    assert searcher.model_sha256 == searcher.store.meta["checkpoint_sha256"]
    expected = searcher.encode([searcher.decode(upload)])[0]
    assert np.frombuffer(code, np.uint8).tolist() == expected.tolist()


def test_the_cli_never_adds_codes_of_another_model(index, class_folders, tmp_path):
    other = other_model(tmp_path / "other.safetensors", seed=4)
    with pytest.raises(CheckpointMismatchError):
        add([class_folders], index, IndexOptions(checkpoint=str(other), progress=False))


def descriptors() -> tuple[int, int]:
    """(open file descriptors, those on deleted catalog files) of this process."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor os.listdir itself used
            continue
    return len(targets), sum("catalog" in t and t.endswith("(deleted)") for t in targets)


def test_rebuilds_do_not_leak_open_catalogs(client, index, class_folders):
    query = class_folders / "class0" / "0002.png"
    for _ in range(2):  # the service keeps one replaced catalog open for searches still on it
        rebuild(class_folders, index, default_checkpoint())
        top_hit(client, query)
    settled, _ = descriptors()
    for _ in range(4):
        rebuild(class_folders, index, default_checkpoint())
        top_hit(client, query)
    total, on_deleted = descriptors()
    assert total <= settled and on_deleted <= 3  # each rebuild had leaked about 17 before
