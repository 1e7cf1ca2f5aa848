"""The HTTP API with its real lifespan, on a small real index built with the default model."""

from __future__ import annotations

import base64
import gc
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nac_hash.checkpoint import copy_checkpoint, read_sidecar
from nac_hash.index_data.config import DEFAULT_DEDUP_DISTANCE, IndexOptions
from nac_hash.index_data.indexer import build, info
from nac_hash.index_data.store import IndexDirError
from nac_hash.service.app import create_app
from nac_hash.service.settings import Settings


@pytest.fixture
def client(index: Path):
    with TestClient(create_app(Settings(index=index))) as client:
        yield client


def png(colour: tuple[int, int, int], size: int = 32, noise: int = 0, seed: int = 0) -> bytes:
    pixels = np.full((size, size, 3), colour, np.float32)
    pixels += np.random.default_rng(seed).normal(0, noise, pixels.shape) if noise else 0
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {"status": "ready", "items": 36, "bits": 128, "index_type": "flat"}


def test_search_by_upload_base64_and_code_agree(client, class_folders):
    data = (class_folders / "class1" / "0004.png").read_bytes()
    by_upload = client.post("/search", files={"image": ("q.png", data, "image/png")}, data={"k": "5"})
    assert by_upload.status_code == 200, by_upload.text
    body = by_upload.json()
    assert len(body["hits"]) == 5 and body["hits"][0]["distance"] == 0
    assert [h["distance"] for h in body["hits"]] == sorted(h["distance"] for h in body["hits"])
    assert body["hits"][0]["label"] == "class1" and set(body["timings"]) == {"decode_ms", "encode_ms", "search_ms"}
    assert body["timings"]["encode_ms"] > 0

    by_base64 = client.post("/search", json={"image_base64": base64.b64encode(data).decode(), "k": 5}).json()
    by_code = client.post("/search", json={"code": body["query_code"], "k": 5}).json()
    assert by_base64["query_code"] == by_code["query_code"] == body["query_code"]
    assert by_base64["hits"] == body["hits"]
    # A code carries no pre-activations, so its ties are ordered differently; the distances are the same.
    assert [h["distance"] for h in by_code["hits"]] == [h["distance"] for h in body["hits"]]
    assert by_code["timings"]["encode_ms"] == 0


def test_max_distance_and_batch(client):
    code = client.get("/items/1").json()["code"]
    near = client.post("/search", json={"code": code, "k": 36, "max_distance": 0}).json()["hits"]
    assert near and all(h["distance"] == 0 for h in near)
    batch = client.post("/search/batch", json={"queries": [{"code": code}, {"image_base64": base64.b64encode(
        png((0, 200, 0))).decode()}], "k": 3})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert len(results) == 2 and results[0]["query_code"] == code and len(results[1]["hits"]) == 3


@pytest.mark.parametrize(("request_kwargs", "status", "message"), [
    ({"json": {"code": "abcd"}}, 422, "bits"),
    ({"json": {"code": "xyz"}}, 422, "should match pattern"),
    ({"json": {"code": ""}}, 422, "should match pattern"),
    ({"json": {}}, 422, "exactly one"),
    ({"json": {"code": None}}, 422, "valid string"),
    ({"json": {"code": "00" * 16, "image_base64": "AAAA"}}, 422, "exactly one"),
    ({"json": {"code": "00" * 16, "k": 0}}, 422, "k"),
    ({"json": {"code": "00" * 16, "k": 1001}}, 422, "k"),
    ({"json": {"image_base64": "%%%"}}, 422, "base64"),
    ({"json": {"image_base64": base64.b64encode(b"not an image").decode()}}, 422, "not a readable image"),
    ({"files": {"image": ("x.png", b"", "image/png")}}, 422, "empty"),
    ({"files": {"other": ("x.png", b"abc", "image/png")}}, 422, "image"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "json"),
    ({"content": b"\xff\xd8\xff", "headers": {"content-type": "image/jpeg"}}, 415, "multipart/form-data"),
])
def test_bad_search_requests_get_4xx_json(client, request_kwargs, status, message):
    response = client.post("/search", **request_kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"].lower()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_size_limits(index):
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")
    with TestClient(create_app(Settings(index=index, max_upload_bytes=50_000))) as client:
        too_big = client.post("/search", files={"image": ("big.png", b"x" * 50_001, "image/png")})
        assert too_big.status_code == 413
        far_too_big = client.post("/items", files={"image": ("big.png", b"x" * 200_000, "image/png")})
        assert far_too_big.status_code == 413 and "over the limit" in far_too_big.json()["detail"]
        response = client.post("/search", files={"image": ("bomb.png", bomb.getvalue(), "image/png")})
        assert response.status_code == 422 and "more than the limit" in response.json()["detail"]


def test_items_and_images(client, class_folders):
    item = client.get("/items/2").json()
    assert item["path"] == "class0/0001.png" and len(item["code"]) == 32
    image = client.get("/items/2/image")
    assert image.status_code == 200 and image.content == (class_folders / "class0" / "0001.png").read_bytes()
    assert client.get("/items/999").status_code == 404
    assert client.get("/items/999/image").status_code == 404


def test_add_and_delete_persist_like_the_indexer(client, index):
    data = png((250, 250, 0), noise=10)
    added = client.post("/items", files={"image": ("yellow.png", data, "image/png")})
    assert added.status_code == 201, added.text
    item = added.json()
    assert item["id"] == 37 and item["label"] is None
    assert item["path"] == hashlib.sha256(data).hexdigest()[:24] + ".png"  # stored in INDEX/uploads by content
    again = client.post("/items", files={"image": ("copy.png", data, "image/png")}).json()
    assert again["id"] == item["id"]  # the same bytes are one item
    assert info(index)["items"] == 37  # committed to disk, where the indexer sees it
    hits = client.post("/search", files={"image": ("q.png", data, "image/png")}, data={"k": "1"}).json()["hits"]
    assert hits[0]["id"] == item["id"] and hits[0]["distance"] == 0
    assert client.get(f"/items/{item['id']}/image").content == data

    assert client.delete(f"/items/{item['id']}").status_code == 200
    assert client.delete(f"/items/{item['id']}").status_code == 404
    assert info(index)["items"] == 36 and not list((index / "uploads").iterdir())
    assert client.get("/readyz").json()["items"] == 36


def test_bad_uploads_to_items(client):
    assert client.post("/items", files={"image": ("x.png", b"junk", "image/png")}).status_code == 422
    assert client.post("/items", files={"image": ("x.tiff", b"II*\x00" + bytes(64), "image/tiff")}).status_code == 422


def test_api_key_guards_mutations(index):
    with TestClient(create_app(Settings(index=index, api_key="s3cret"))) as client:
        upload = {"image": ("a.png", png((10, 20, 30)), "image/png")}
        assert client.post("/items", files=upload).status_code == 401
        assert client.delete("/items/1", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/items", files=upload, headers={"X-API-Key": "s3cret"}).status_code == 201
        assert client.delete("/items/1", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.post("/search", json={"code": "00" * 16}).status_code == 200  # searches stay open


def test_mmap_service_is_read_only(index):
    with TestClient(create_app(Settings(index=index, mmap=True))) as client:
        assert client.post("/search", json={"code": "ff" * 16, "k": 3}).status_code == 200
        assert client.delete("/items/1").status_code == 409


@pytest.mark.parametrize("freeze", [True, False])
def test_objects_loaded_at_start_up_leave_the_collector_while_serving(index, freeze):
    gc.unfreeze()
    with TestClient(create_app(Settings(index=index, gc_freeze=freeze))) as client:
        assert (gc.get_freeze_count() > 0) == freeze
        assert client.post("/search", json={"code": "ff" * 16, "k": 3}).status_code == 200
    assert gc.get_freeze_count() == 0


def test_metrics_count_requests_and_stages(client):
    client.post("/search", files={"image": ("q.png", png((5, 5, 5)), "image/png")})
    text = client.get("/metrics").text
    assert 'nac_hash_requests_total{method="POST",route="/search",status="200"} 1.0' in text
    for stage in ("decode", "encode", "search"):
        assert f'nac_hash_stage_seconds_count{{stage="{stage}"}} 1.0' in text


def test_web_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<input id=\"file\"" in page.text
    spec = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/items", "/items/{item_id}", "/healthz", "/readyz"} <= set(spec["paths"])
    assert set(spec["paths"]["/search"]["post"]["requestBody"]["content"]) == {"application/json",
                                                                                "multipart/form-data"}
    assert client.get("/docs").status_code == 200


def test_missing_index_fails_at_startup(tmp_path):
    with pytest.raises(IndexDirError, match="not an nac-hash index"), TestClient(create_app(Settings(index=tmp_path))):
        pass


def test_duplicates_of_an_item_and_of_an_upload(client, class_folders):
    data = (class_folders / "class2" / "0003.png").read_bytes()
    by_upload = client.post("/duplicates", files={"image": ("q.png", data, "image/png")}, data={"max_distance": "0"})
    assert by_upload.status_code == 200, by_upload.text
    hits = by_upload.json()["hits"]
    assert any(h["path"] == "class2/0003.png" for h in hits) and all(h["distance"] == 0 for h in hits)
    item_id = next(h["id"] for h in hits if h["path"] == "class2/0003.png")
    wide = client.get(f"/items/{item_id}/duplicates", params={"max_distance": 12}).json()
    assert item_id not in {h["id"] for h in wide["hits"]} and wide["max_distance"] == 12
    assert all(h["distance"] <= 12 for h in wide["hits"])
    assert {h["id"] for h in hits} - {item_id} <= {h["id"] for h in wide["hits"]}
    # The index of the retrieval model finds copies by its copy codes: the copy model's 224 bits and distance.
    sidecar = read_sidecar(copy_checkpoint())
    copy_bits = sidecar["model"]["bits"] + sidecar["model"]["perceptual_bits"]
    assert client.get(f"/items/{item_id}/duplicates", params={"max_distance": 99}).status_code == 422
    assert client.get(f"/items/{item_id}/duplicates", params={"max_distance": copy_bits // 4 + 1}).status_code == 422
    assert client.get(f"/items/{item_id}/duplicates", params={"max_distance": copy_bits // 4}).status_code == 200
    assert client.get(f"/items/{item_id}/duplicates").json()["max_distance"] == sidecar["dedup_distance"]
    schema = client.get("/openapi.json").json()["paths"]["/items/{item_id}/duplicates"]["get"]["parameters"]
    assert [p["schema"]["anyOf"][0]["maximum"] for p in schema if p["name"] == "max_distance"] == [copy_bits // 4]


def test_an_index_of_the_retrieval_model_answers_duplicates_with_the_copy_model(client, class_folders):
    """A mirrored copy changes the retrieval model's code, not the copy model's: it is found at the default
    distance, as an upload and, once added, as an item; the index's own codes do not find it."""
    original = Image.open(class_folders / "class0" / "0005.png")
    buffer = io.BytesIO()
    original.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((96, 96)).save(buffer, format="JPEG", quality=80)
    mirrored = buffer.getvalue()
    found = client.post("/duplicates", files={"image": ("m.jpg", mirrored, "image/jpeg")}).json()
    assert "class0/0005.png" in {h["path"] for h in found["hits"]}
    own_code = client.post("/search", files={"image": ("m.jpg", mirrored, "image/jpeg")}).json()["query_code"]
    original_id = next(h["id"] for h in found["hits"] if h["path"] == "class0/0005.png")
    stored = client.get(f"/items/{original_id}").json()["code"]
    assert (int(own_code, 16) ^ int(stored, 16)).bit_count() > DEFAULT_DEDUP_DISTANCE
    added = client.post("/items", files={"image": ("m.jpg", mirrored, "image/jpeg")})
    assert added.status_code == 201, added.text
    copies = client.get(f"/items/{added.json()['id']}/duplicates").json()["hits"]
    assert "class0/0005.png" in {h["path"] for h in copies}


def test_an_index_of_the_copy_model_answers_duplicates_at_its_distance(class_folders, tmp_path):
    build([class_folders], tmp_path / "copies.idx", IndexOptions(checkpoint="copies", progress=False))
    sidecar = read_sidecar(copy_checkpoint())
    recorded, bits = sidecar["dedup_distance"], sidecar["model"]["bits"] + sidecar["model"]["perceptual_bits"]
    with TestClient(create_app(Settings(index=tmp_path / "copies.idx"))) as client:
        data = (class_folders / "class1" / "0002.png").read_bytes()
        found = client.post("/duplicates", files={"image": ("q.png", data, "image/png")}).json()
        assert found["max_distance"] == recorded > DEFAULT_DEDUP_DISTANCE
        assert any(h["path"] == "class1/0002.png" and h["distance"] == 0 for h in found["hits"])
        assert client.get("/readyz").json()["bits"] == bits
