"""What routes share: the service object and the app's metrics, as dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from nac_hash.service.metrics import Metrics
from nac_hash.service.state import SearchService


async def get_service(request: Request) -> SearchService:
    """The app's service, caught up with changes other processes committed.

    Async, so a request does not pay a thread-pool hop for it; the catalog read of a due refresh goes to the pool.
    """
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, "the index is not loaded yet")
    if service.refresh_due():
        await run_in_threadpool(service.refresh)
    return service


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


Service = Annotated[SearchService, Depends(get_service)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
ItemId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="item id")]  # SQLite's integer range
