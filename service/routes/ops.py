"""Operations: liveness, readiness, Prometheus metrics and the web page."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from nac_hash.service.deps import AppMetrics, Service
from nac_hash.service.schemas import Health, Problem, Ready

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> str:
    return (resources.files("nac_hash.service") / "static" / "index.html").read_text()


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (async: it never waits for a worker thread)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Problem}})
async def readyz(service: Service) -> Ready:
    """Model and index are loaded."""
    return Ready(status="ready", **service.status())


@router.get("/metrics", include_in_schema=False)
def prometheus(metrics: AppMetrics) -> Response:
    return metrics.response()
