"""Concurrent searches, adds and deletes against the live service: no errors, nothing lost, nothing half-done."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from nac_hash.index_data.indexer import info

SEARCHERS, ADDERS, PER_ADDER, DELETED = 4, 3, 8, list(range(1, 13))


def unique_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_concurrent_search_add_delete(live_server: str, index: Path) -> None:
    code = httpx.get(f"{live_server}/items/20").json()["code"]

    def search(worker: int) -> list[int]:
        with httpx.Client(base_url=live_server, timeout=60) as client:
            return [client.post("/search", json={"code": code, "k": 50}).status_code for _ in range(40)]

    def add(worker: int) -> list[tuple[int, int]]:
        with httpx.Client(base_url=live_server, timeout=60) as client:
            answers = [client.post("/items", files={"image": (f"{worker}-{i}.png", unique_png(worker * 100 + i),
                                                               "image/png")}) for i in range(PER_ADDER)]
            return [(a.status_code, a.json().get("id", -1)) for a in answers]

    def delete(_: int) -> list[int]:
        with httpx.Client(base_url=live_server, timeout=60) as client:
            return [client.delete(f"/items/{item_id}").status_code for item_id in DELETED]

    with ThreadPoolExecutor(SEARCHERS + ADDERS + 1) as pool:
        searches = [pool.submit(search, w) for w in range(SEARCHERS)]
        adds = [pool.submit(add, w) for w in range(ADDERS)]
        deletes = pool.submit(delete, 0)
        search_codes = [s for f in searches for s in f.result(timeout=300)]
        added = [a for f in adds for a in f.result(timeout=300)]
        delete_codes = deletes.result(timeout=300)

    assert set(search_codes) == {200} and delete_codes == [200] * len(DELETED)
    assert {status for status, _ in added} == {201}
    added_ids = {item_id for _, item_id in added}
    assert len(added_ids) == ADDERS * PER_ADDER

    expected = (set(range(1, 37)) - set(DELETED)) | added_ids
    everything = httpx.post(f"{live_server}/search", json={"code": code, "k": 1000}).json()["hits"]
    assert {hit["id"] for hit in everything} == expected  # every add and delete reached the live index
    assert info(index)["items"] == len(expected)  # and the index on disk
    assert httpx.get(f"{live_server}/items/{DELETED[0]}").status_code == 404
    assert len(list((index / "uploads").iterdir())) == len(added_ids)
