"""Check a running ``nac-hash serve``: ready, then one search by image and one by code, each finding the image.

Used on an installed wheel (tests/test_packaging.py) and on the container (scripts/container-check.sh). Standard
library only, so it runs with any Python 3.11.

Usage: python scripts/service_smoke.py URL IMAGE [--wait SECONDS]
  IMAGE must be one of the served index's images: it must come back at distance 0, first or tied with the first
  (two tiny images may share a code).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def wait_ready(url: str, seconds: float) -> None:
    """Poll ``/readyz`` until it answers 200, for at most ``seconds``."""
    deadline, last = time.monotonic() + seconds, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = str(e)
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {seconds:.0f} s: {last}")


def post(url: str, body: bytes, content_type: str) -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def search_by_image(url: str, image: Path, k: int = 3) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{k}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{image.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + image.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    return post(f"{url}/search", body, f"multipart/form-data; boundary={boundary}")


def search_by_code(url: str, code: str, k: int = 3) -> dict:
    return post(f"{url}/search", json.dumps({"code": code, "k": k}).encode(), "application/json")


def check(url: str, image: Path, wait_s: float) -> str:
    """Both searches; returns a one-line summary, or exits with what went wrong."""
    wait_ready(url, wait_s)
    by_image = search_by_image(url, image, k=10)
    exact = [hit for hit in by_image["hits"] if hit["distance"] == 0]
    top = next((hit for hit in exact if Path(hit["path"]).name == image.name), None)
    if top is None:
        raise SystemExit(f"search by image: expected {image.name} at distance 0, got {by_image['hits'][:3]}")
    by_code = search_by_code(url, by_image["query_code"])
    if by_code["hits"][0]["distance"] != 0:
        raise SystemExit(f"search by code: expected a hit at distance 0 first, got {by_code['hits'][0]}")
    return f"search by image and by code: {top['path']} at distance 0 (code {by_image['query_code']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("image", type=Path)
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for /readyz (default: 120)")
    args = parser.parse_args()
    print(check(args.url.rstrip("/"), args.image, args.wait))


if __name__ == "__main__":
    sys.exit(main())
