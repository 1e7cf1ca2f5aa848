"""Checks every request passes before any route reads its body: the size limit, streamed, and who may write.

A pure ASGI middleware, so that it sees the request before FastAPI parses (and, for multipart, spools) the
body. The limit counts the bytes as they arrive, whatever the transfer encoding: a chunked body without a
Content-Length is cut off at the first chunk past the limit. Writes (POST/PUT/PATCH/DELETE under /items)
need the API key when one is set, are refused without one unless the service listens on loopback only or the
operator allowed it (``NAC_HASH_ALLOW_OPEN_WRITES``), and are refused where the Host header names a host
this server was not started for (DNS rebinding: another site's name pointed at this address) or from another
site's page (a browser sends an Origin header that does not match the Host). A body must arrive whole
within ``body_timeout_s``; a refused body closes the connection instead of being read to its end.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import urlsplit

import anyio
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nac_hash.service.settings import Settings

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITE_PREFIX = "/items"


CLOSE = {"Connection": "close"}  # after a refused body: the connection is closed rather than read to its end


class BodyTooLargeError(HTTPException):
    """Raised from ``receive`` once the body passes the limit (an HTTPException, so FastAPI's body parsing
    passes it on instead of turning it into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the limit of {limit:,} bytes", headers=CLOSE)


class BodyTimeoutError(HTTPException):
    """Raised from ``receive`` when the body has not arrived whole within the deadline (a slow client)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s", headers=CLOSE)


def body_limit(settings: Settings) -> int:
    """An image may come as base64 (4/3 larger) inside JSON or multipart framing."""
    return settings.max_upload_bytes * 4 // 3 + 16 * 1024


def host_name(host: str) -> str:
    """A Host header without its port, lower case: ``[::1]:8000`` -> ``::1``, ``Example.com:80`` -> ``example.com``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def write_refusal(settings: Settings, headers: Headers) -> tuple[int, str] | None:
    """(status, reason) when this request may not write, None when it may."""
    host = host_name(headers.get("host", ""))
    if host not in settings.write_hosts:
        return 403, (f"writes must name a host this server serves (Host {host or 'missing'!r} is not one of "
                     f"{', '.join(sorted(settings.write_hosts))}); add it to NAC_HASH_ALLOWED_HOSTS")
    key = settings.api_key
    if key is None and not settings.open_writes:
        return 403, ("writes are disabled: the service listens beyond loopback without an API key; set "
                     "NAC_HASH_API_KEY, or NAC_HASH_ALLOW_OPEN_WRITES=true to let anyone write")
    if key is not None:
        given = headers.get("x-api-key", "").encode("latin-1")  # header values arrive decoded as latin-1
        if not secrets.compare_digest(given, key.get_secret_value().encode()):
            return 401, "missing or wrong X-API-Key"
    origin = headers.get("origin")
    if origin and urlsplit(origin).netloc != headers.get("host", ""):
        return 403, "cross-site writes are refused (the Origin header names another site)"
    return None


async def send_problem(send: Send, status: int, error: str, detail: str, close: bool = False) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limit = body_limit(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] in WRITE_METHODS and scope["path"].startswith(WRITE_PREFIX):
            refusal = write_refusal(self.settings, headers)
            if refusal is not None:
                await send_problem(send, refusal[0], "WriteRefused", refusal[1])
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await send_problem(send, 413, "RequestTooLarge", f"request body of {int(length):,} bytes is over "
                               f"the limit of {self.limit:,}", close=True)
            return
        received, whole = 0, False
        deadline = time.monotonic() + self.settings.body_timeout_s

        async def limited_receive() -> Message:
            """The body, cut off past the limit or the deadline; after it, the connection's end as it comes."""
            nonlocal received, whole
            if whole:
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError as e:
                raise BodyTimeoutError(self.settings.body_timeout_s) from e
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLargeError(self.limit)
            whole = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)
