"""The service on loopback with uvicorn, serving the shared ``index`` fixture, for tests that need a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from helpers import free_port

from nac_hash.service.app import create_app
from nac_hash.service.settings import Settings


@pytest.fixture
def live_server(index: Path) -> Iterator[str]:
    """Base URL of the service serving ``index`` from a background thread, lifespan included."""
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(index=index)), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def server(index: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of ``nac-hash serve`` serving ``index`` in its own process, so that its memory and open
    files are its own; ``@pytest.mark.parametrize("server", [{"NAC_HASH_...": ...}], indirect=True)`` sets its
    environment."""
    port = free_port()
    env = {**os.environ, **getattr(request, "param", {})}
    process = subprocess.Popen([sys.executable, "-m", "nac_hash.cli", "serve", "--index", str(index), "--port",
                                str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.2)
    yield url, process.pid
    process.terminate()
    process.wait(timeout=30)


def peak_mb(pid: int) -> float:
    """The peak resident memory of process ``pid`` so far, in MiB."""
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024
