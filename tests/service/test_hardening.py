"""The findings of the attack pass on the service, each reproduced: decoder bombs, streamed bodies, write
policy, races between writers, lock waits, stale searches, metric labels and error bodies."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import add
from nac_hash.index_data.lock import write_lock
from nac_hash.service.app import create_app
from nac_hash.service.settings import Settings


def png(colour: tuple[int, int, int], size: tuple[int, int] = (32, 32), seed: int = 0) -> bytes:
    pixels = np.clip(np.full((size[1], size[0], 3), colour, np.float32) +
                     np.random.default_rng(seed).normal(0, 8, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def problem_body(response) -> None:
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert "/tmp" not in body["detail"] and "/data" not in body["detail"]


@pytest.fixture
def client(index: Path):
    with TestClient(create_app(Settings(index=index, refresh_s=0.1, writer_wait_s=0.5))) as client:
        yield client


def test_thin_strip_png_answers_422_at_once(client):
    buffer = io.BytesIO()
    Image.new("L", (1, 300_000)).save(buffer, format="PNG")  # 661 bytes
    started = time.perf_counter()
    response = client.post("/search", files={"image": ("strip.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 422 and time.perf_counter() - started < 1.0
    problem_body(response)


def test_chunked_body_is_cut_off_at_the_limit(index):
    """A raw socket sends a chunked body without Content-Length; the answer is 413 before the body ends."""
    settings = Settings(index=index, max_upload_bytes=30_000)
    limit = settings.max_upload_bytes * 4 // 3 + 16 * 1024
    from uvicorn import Config, Server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Server(Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"a" * 8192
            for _ in range(limit // len(chunk) + 2):  # just past the limit, then stop sending
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            reply = connection.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_write_policy(index):
    with pytest.raises(ValidationError, match="empty"):
        Settings(index=index, api_key="")
    upload = {"image": ("a.png", png((10, 200, 30)), "image/png")}
    with TestClient(create_app(Settings(index=index, host="0.0.0.0"))) as client:
        refused = client.post("/items", files=upload)
        assert refused.status_code == 403 and "NAC_HASH_API_KEY" in refused.json()["detail"]
        assert client.post("/search", json={"code": "00" * 16}).status_code == 200  # reads stay open
    with TestClient(create_app(Settings(index=index, host="0.0.0.0", allow_open_writes=True))) as client:
        assert client.post("/items", files=upload).status_code == 201
        cross_site = client.post("/items", files=upload, headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403 and "cross-site" in cross_site.json()["detail"]
    with TestClient(create_app(Settings(index=index, api_key="s3cret"))) as client:
        assert client.delete("/items/1", headers={"X-API-Key": "s\xe9cret".encode("latin-1")}).status_code == 401


def test_a_blank_key_is_refused_at_start_up(index):
    for key in ("   ", " s3cret", "\t"):
        with pytest.raises(ValidationError, match="NAC_HASH_API_KEY"):
            Settings(index=index, api_key=key)


def test_item_images_answer_head_and_one_range(client, class_folders):
    data = (class_folders / "class0" / "0000.png").read_bytes()
    item_id = next(h["id"] for h in client.post("/search", files={"image": ("q.png", data, "image/png")}).json()[
        "hits"] if h["path"] == "class0/0000.png")
    head = client.head(f"/items/{item_id}/image")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data) and head.content == b""
    part = client.get(f"/items/{item_id}/image", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    several = client.get(f"/items/{item_id}/image", headers={"Range": "bytes=0-4,10-14"})
    assert several.status_code == 416 and several.headers["content-range"] == f"bytes */{len(data)}"


def test_writes_naming_a_host_the_server_does_not_serve_are_refused(index):
    """DNS rebinding: a page of evil.example, its name pointed at 127.0.0.1, posts to the loopback service."""
    upload = {"image": ("a.png", png((10, 200, 30)), "image/png")}
    settings = Settings(index=index, allowed_hosts=[])
    with TestClient(create_app(settings), base_url="http://evil.example:8000") as client:
        rebound = client.post("/items", files=upload, headers={"Origin": "http://evil.example:8000"})
        assert rebound.status_code == 403 and "NAC_HASH_ALLOWED_HOSTS" in rebound.json()["detail"]
        assert client.post("/search", json={"code": "00" * 16}).status_code == 200  # reads stay open
        for host in ("", "127.0.0.1.evil.example", "localhost.:8000"):
            assert client.post("/items", files=upload, headers={"Host": host}).status_code == 403, host
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
            assert client.post("/items", files=upload, headers={"Host": host}).status_code == 201, host
    proxied = Settings(index=index, host="0.0.0.0", api_key="k", allowed_hosts="search.example.com, Other.org")
    assert proxied.write_hosts == {"127.0.0.1", "localhost", "::1", "search.example.com", "other.org"}
    with TestClient(create_app(proxied), base_url="http://search.example.com") as client:
        assert client.post("/items", files=upload, headers={"X-API-Key": "k"}).status_code == 201
        unnamed = client.post("/items", files=upload, headers={"X-API-Key": "k", "Host": "10.0.0.5:8000"})
        assert unnamed.status_code == 403  # a proxy that does not say which host it serves


def test_delete_racing_a_post_of_the_same_bytes_never_loses_a_file(client, index):
    data = png((200, 60, 60), seed=3)
    files = {"image": ("red.png", data, "image/png")}
    item_id = client.post("/items", files=files).json()["id"]
    bad = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(15):
            posted = pool.submit(client.post, "/items", files=files)
            deleted = pool.submit(client.delete, f"/items/{item_id}")
            post, _ = posted.result(), deleted.result()
            if post.status_code == 201:
                item_id = post.json()["id"]
                item = client.get(f"/items/{item_id}")
                if item.status_code == 200 and client.get(f"/items/{item_id}/image").status_code != 200:
                    bad.append("acknowledged item without its file")
            elif post.status_code != 503:
                bad.append(post.text)
    assert not bad


def test_writes_waiting_for_a_cli_writer_get_503_and_never_starve_reads(client, index):
    with write_lock(index), ThreadPoolExecutor(12) as pool:  # the CLI holds the index
        started = time.perf_counter()
        posts = [pool.submit(client.post, "/items", files={"image": (f"{i}.png", png((i * 20, 9, 9), seed=i),
                                                                     "image/png")}) for i in range(10)]
        assert client.get("/healthz").status_code == 200
        assert client.post("/search", json={"code": "00" * 16}).status_code == 200
        answers = [p.result() for p in posts]
    assert time.perf_counter() - started < 5.0
    assert {a.status_code for a in answers} == {503}
    assert all(a.headers["Retry-After"] == "1" for a in answers)
    # Each says what happened: the slots for waiting writes were full, or how long it waited, and for whom.
    details = [a.json()["detail"] for a in answers]
    assert all(re.search(r"writes are already waiting|waited [0-9.]+ s for another (process|write)", d)
               for d in details), details
    assert any(re.search(r"waited [0-9.]+ s for another process", d) for d in details)


def test_a_cli_change_is_seen_within_a_second(client, index, tmp_path):
    folder = tmp_path / "more"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(png((9, 9, 200 - i * 40), seed=10 + i))
    add([folder], index, IndexOptions(progress=False))
    deadline = time.monotonic() + 2.0
    while client.get("/readyz").json()["items"] != 39:
        assert time.monotonic() < deadline, "the service did not see the CLI's add"
        time.sleep(0.1)
    query = (folder / "0.png").read_bytes()
    hit = client.post("/search", files={"image": ("q.png", query, "image/png")}, data={"k": "1"}).json()["hits"][0]
    assert hit["distance"] == 0 and hit["path"] == "0.png"


def test_uploads_are_stored_by_content(client, index):
    data = png((30, 30, 220), seed=5)
    first = client.post("/items", files={"image": ("photo.gif", data, "image/gif")}).json()
    second = client.post("/items", files={"image": ("other.jpg", data, "image/jpeg")}).json()
    assert first["id"] == second["id"] and first["path"].endswith(".png")
    served = client.get(f"/items/{first['id']}/image")
    assert served.headers["content-type"] == "image/png" and served.headers["x-content-type-options"] == "nosniff"


def test_orphan_uploads_are_removed_at_start_up(index):
    orphan = index / "uploads" / "0123456789abcdef01234567.png"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(png((1, 2, 3)))
    with TestClient(create_app(Settings(index=index))):
        assert not orphan.exists()


def test_metric_labels_stay_bounded(client):
    for method in ("FOO", "BAR1", "X" * 40):
        client.request(method, "/search")
    for i in range(20):
        client.get(f"/no/such/path/{i}")
    text = client.get("/metrics").text
    assert "FOO" not in text and "no/such" not in text
    assert 'method="other",route="unmatched"' in text or 'method="other",route="/search"' in text


def test_every_error_has_the_documented_body(client):
    for response in (client.get("/nowhere"), client.put("/search"), client.get("/items/99999"),
                     client.post("/search", content=b"--x\r\n", headers={"content-type": "multipart/form-data"})):
        assert response.status_code in (400, 404, 405, 422), response.text
        problem_body(response)


def test_an_upload_is_decoded_and_encoded_once(client, monkeypatch):
    import nac_hash.index_data.indexer as indexer
    import nac_hash.index_data.search as search

    calls = {"decode": 0, "embed": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(search, "decode_image", counted("decode", search.decode_image))
    monkeypatch.setattr(indexer, "decode_image", counted("decode", indexer.decode_image))
    monkeypatch.setattr(search.Searcher, "embed", counted("embed", search.Searcher.embed))
    assert client.post("/items", files={"image": ("n.png", png((90, 180, 40), seed=8), "image/png")}).status_code == 201
    assert calls == {"decode": 1, "embed": 1}
