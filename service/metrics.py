"""Prometheus metrics of one app: request counts and latency, and time per search stage (:class:`Stages`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nac_hash.service.schemas import Timings

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """A registry per app, so that several apps in one process (tests) keep separate counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("nac_hash_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("nac_hash_request_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=STAGE_BUCKETS, registry=self.registry)
        self.stage_seconds = Histogram("nac_hash_stage_seconds", "time per stage of a search: decode, encode, "
                                       "search", ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """A pure ASGI middleware counting every request (refused ones too) and its latency. Not Starlette's
        BaseHTTPMiddleware, which hides a client's disconnect from the routes (a batch could not stop)."""
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start, status = time.perf_counter(), "500"

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = str(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                # Labels come from fixed sets, whatever a client sends: route templates, not raw paths, and
                # known methods.
                route = scope.get("route")
                name = route.path if route is not None else "unmatched"
                method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
                self.requests.labels(method, name, status).inc()
                self.latency.labels(method, name).observe(time.perf_counter() - start)

        return counted

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class Stages:
    """Wall time per request stage, recorded in the response and in Prometheus histograms."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.timings = Timings()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            setattr(self.timings, f"{name}_ms", getattr(self.timings, f"{name}_ms") + seconds * 1000)
            if self.metrics is not None:
                self.metrics.stage_seconds.labels(name).observe(seconds)
