"""Running the service with uvicorn: its limits on connections and slow clients come from Settings.

uvicorn caps connections (``limit_concurrency``: past the cap a request gets 503) and idle keep-alive time, but
sets no deadline on a request's head: a client sending its headers a byte at a time (slowloris) would hold a
connection for ever. :func:`protocol_with_head_deadline` adds that deadline to uvicorn's HTTP/1.1 protocol;
the body's deadline is the request guard's (:mod:`nac_hash.service.guard`).
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from nac_hash.service.app import create_app
from nac_hash.service.settings import Settings


def protocol_with_head_deadline(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose next request head is not complete ``seconds`` after
    the connection opened or the previous response ended."""

    class HeadDeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:  # a whole head arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(seconds, self.transport.close)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    return HeadDeadlineProtocol


def serve(settings: Settings) -> None:
    """Run the service in the foreground until interrupted."""
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                http=protocol_with_head_deadline(settings.header_timeout_s),
                limit_concurrency=settings.max_connections, timeout_keep_alive=settings.keep_alive_s)
