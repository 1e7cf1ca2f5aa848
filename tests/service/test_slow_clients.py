"""Slow and unfinished requests against a real `nac-hash serve` process: heads and bodies that never finish are
cut off at their deadlines and their connections closed, memory and descriptors come back, and a refused body
closes its connection instead of being read to its end."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest
from conftest import peak_mb

pytestmark = pytest.mark.slow
DEADLINES = {"NAC_HASH_HEADER_TIMEOUT_S": "1", "NAC_HASH_BODY_TIMEOUT_S": "1"}


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def closed_by_server(connection: socket.socket, within_s: float = 10.0) -> bytes:
    """Read until the server closes the connection (or ``within_s`` passes): what it sent before closing."""
    connection.settimeout(within_s)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        return received + b"<still open>"
    return received


@pytest.mark.parametrize("server", [DEADLINES], indirect=True)
def test_unfinished_heads_and_bodies_are_cut_off_and_released(server):
    url, pid = server
    host, port = url.removeprefix("http://").split(":")
    assert httpx.get(f"{url}/healthz").status_code == 200
    descriptors, memory = open_descriptors(pid), peak_mb(pid)
    heads = [socket.create_connection((host, int(port))) for _ in range(60)]
    for connection in heads:  # slowloris: a head that never ends
        connection.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    bodies = [socket.create_connection((host, int(port))) for _ in range(20)]
    for connection in bodies:  # 8 MB of a declared 20 MB JSON body, then nothing
        connection.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 20000000\r\n\r\n{\"code\": \"" + b"0" * 8_000_000)
    for connection in heads:
        assert closed_by_server(connection) == b""  # closed without an answer: no request was made
    for connection in bodies:
        answer = closed_by_server(connection)
        assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower(), answer[:200]
    for connection in heads + bodies:
        connection.close()
    time.sleep(1)
    assert open_descriptors(pid) <= descriptors + 2
    assert peak_mb(pid) - memory < 400  # 20 x 8 MB in flight at most; held for ever before
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_a_refused_body_closes_its_connection(server):
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 900000000\r\n\r\n" + b"0" * 100_000)
        answer = closed_by_server(connection)
    assert answer.startswith(b"HTTP/1.1 413") and not answer.endswith(b"<still open>")
