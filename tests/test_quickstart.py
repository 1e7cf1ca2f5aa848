"""The quickstart on a machine with no data: CIFAR-10 fetched from a mirror on loopback (a tiny archive in the
official layout), resumed after a broken transfer, refused with a wrong checksum, and one clear line offline."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from helpers import REPO, free_port

from nac_hash.training.cifar10_data import cifar10_folder
from nac_hash.training.datasets import CIFAR10_CLASSES, load_cifar10
from nac_hash.training.fetch import DownloadError, fetch

PER_BATCH = 40


def official_archive() -> bytes:
    """A small cifar-10-python.tar.gz: six batches of PER_BATCH images whose colour follows their class."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            labels = rng.integers(0, 10, PER_BATCH)
            colours = labels[:, None, None, None] * np.array([25, 12, -25]) + [0, 0, 250]
            images = np.clip(colours + rng.normal(0, 20, (PER_BATCH, 32, 32, 3)), 0, 255).astype(np.uint8)
            batch = pickle.dumps({b"data": images.transpose(0, 3, 1, 2).reshape(PER_BATCH, -1),
                                  b"labels": labels.tolist(), b"batch_label": name.encode()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
    return buffer.getvalue()


class Mirror(BaseHTTPRequestHandler):
    """/good: the archive, with Range requests; /truncated: its first answer stops halfway; /bad: other bytes."""

    archive: ClassVar[bytes] = b""
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        range_header = self.headers.get("Range")
        self.requests.append((self.path, range_header))
        body = self.archive[::-1] if self.path == "/bad" else self.archive
        start = int(range_header.removeprefix("bytes=").rstrip("-")) if range_header else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        first = self.path == "/truncated" and sum(p == "/truncated" for p, _ in self.requests) == 1
        self.wfile.write(body[start : len(body) // 2] if first else body[start:])

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def mirror():
    Mirror.archive = official_archive()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hashlib.md5(Mirror.archive).hexdigest()
    server.shutdown()


def test_a_good_transfer_is_verified_and_renamed_into_place(mirror, tmp_path):
    url, md5 = mirror
    path = fetch(f"{url}/good", tmp_path / "a.tar.gz", md5, progress=False)
    assert path.read_bytes() == Mirror.archive and not (tmp_path / "a.tar.gz.part").exists()


def test_a_truncated_transfer_is_resumed_from_where_it_stopped(mirror, tmp_path):
    url, md5 = mirror
    path = fetch(f"{url}/truncated", tmp_path / "a.tar.gz", md5, progress=False)
    assert path.read_bytes() == Mirror.archive
    assert [r for p, r in Mirror.requests if p == "/truncated"] == [None, f"bytes={len(Mirror.archive) // 2}-"]


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(mirror, tmp_path):
    url, md5 = mirror
    with pytest.raises(DownloadError, match=f"not the expected {md5}"):
        fetch(f"{url}/bad", tmp_path / "a.tar.gz", md5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_one_line_naming_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "NAC_HASH_CIFAR10_URL": f"http://127.0.0.1:{free_port()}/cifar.tar.gz"}
    env.pop("DATA_ROOT", None)
    result = subprocess.run([str(REPO / ".venv" / "bin" / "nac-hash"), "data", "cifar10", "--quiet"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "cannot reach" in line and "set DATA_ROOT" in line


def test_downloaded_batches_become_lossless_class_folders(mirror, tmp_path, monkeypatch):
    url, md5 = mirror
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATA_ROOT", raising=False)
    monkeypatch.setenv("NAC_HASH_CIFAR10_URL", f"{url}/good")
    monkeypatch.setenv("NAC_HASH_CIFAR10_MD5", md5)
    folder = cifar10_folder(Path("data"), progress=False)
    assert folder == Path("data/CIFAR-10")
    assert sorted(p.name for p in (folder / "train").iterdir()) == sorted(CIFAR10_CLASSES)
    folders = load_cifar10(folder)
    with tarfile.open(fileobj=io.BytesIO(Mirror.archive)) as archive:
        archive.extractall(tmp_path / "batches", filter="data")
    batches = load_cifar10(tmp_path / "batches")
    order = np.lexsort((np.arange(len(batches.labels)), batches.labels, batches.is_test))  # folder order
    np.testing.assert_array_equal(folders.images, batches.images[order])  # PNG: the very pixels
    assert folders.description == "CIFAR-10"
    assert cifar10_folder(Path("data"), progress=False) == folder  # found the second time, not fetched


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_a_mirror(mirror, tmp_path):
    """The README's first command, in a checkout with no data and no ../shared beside it."""
    url, md5 = mirror
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "quickstart.sh", checkout / "scripts")
    (checkout / ".venv").symlink_to(REPO / ".venv")
    env = {**os.environ, "NAC_HASH_SKIP_SETUP": "1", "PROTOCOL": "cifar10-i", "NAC_HASH_CIFAR10_URL": f"{url}/good",
           "NAC_HASH_CIFAR10_MD5": md5}
    env.pop("DATA_ROOT", None)
    result = subprocess.run(["bash", "scripts/quickstart.sh"], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/cat/0001.png" in result.stdout and "mAP@1000" in result.stdout
    scored = json.loads((checkout / "results" / "default-cifar10.json").read_text())
    assert scored["dataset"] == "CIFAR-10" and scored["protocol"] == "cifar10-i"
    assert {"nac", "lsh", "itq", "phash"} <= set(scored["methods"])
