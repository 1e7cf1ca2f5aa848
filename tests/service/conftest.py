"""The service on loopback with uvicorn, serving the shared ``index`` fixture, for tests that need a live server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
