"""Images that cost far more to decode than they weigh, against a real `nac-hash serve` process: refused from
their headers, at once, by many clients together, and a batch stops decoding when its client has gone."""

from __future__ import annotations

import base64
import io
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import peak_mb
from PIL import Image

pytestmark = pytest.mark.slow


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


BOMBS = {  # each under the 50 MP limit and a few KB, each hundreds of MB once decoded
    "webp": encoded(Image.new("RGB", (7000, 7000)), "WEBP", lossless=True),
    "png-1bit": encoded(Image.new("1", (7000, 7000)), "PNG"),
    "png-strip": encoded(Image.new("1", (1250, 39_999)), "PNG"),
}


def test_bombs_are_refused_even_many_at_once(server):
    url, pid = server
    warm = httpx.post(f"{url}/search", files={"image": ("a.png", encoded(Image.new("RGB", (64, 64)), "PNG"))})
    assert warm.status_code == 200
    before = peak_mb(pid)
    requests = [("image", name, data) for name, data in BOMBS.items()] * 3
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: httpx.post(f"{url}/search", files={r[0]: (r[1], r[2])}, timeout=60),
                                requests))
    batch = httpx.post(f"{url}/search/batch", timeout=60, json={"k": 5, "queries": [
        {"image_base64": base64.b64encode(data).decode()} for data in list(BOMBS.values()) * 7]})
    assert [a.status_code for a in answers] == [422] * len(requests)
    assert batch.status_code == 422 and "pixels a byte" in batch.json()["detail"]
    assert peak_mb(pid) - before < 50


def test_a_batch_stops_decoding_when_its_client_has_gone(server):
    url, _ = server
    ramp = np.add.outer(np.arange(1500), np.arange(1500)) % 256
    photo = encoded(Image.fromarray(np.stack([ramp, ramp.T, ramp // 2], axis=-1).astype(np.uint8)), "PNG")
    body = ('{"k": 1, "queries": [' + ",".join([f'{{"image_base64": "{base64.b64encode(photo).decode()}"}}'] * 60)
            + "]}").encode()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(f"POST /search/batch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # The client is gone. Each of the 60 images of 1500 x 1500 pixels takes milliseconds to decode; had they all
    # been decoded, the decode histogram would count 60.
    time.sleep(1)
    counted = 0.0
    for _ in range(50):
        metrics = httpx.get(f"{url}/metrics").text
        match = re.search(r'nac_hash_stage_seconds_count\{stage="decode"\} (\S+)', metrics)
        counted = float(match.group(1)) if match else 0.0
        time.sleep(0.2)
    assert counted < 60
