"""The FastAPI application: `create_app(settings)` builds it; the lifespan opens the index and the model.

Routes (:mod:`nac_hash.service.routes`) call one :class:`~nac_hash.service.state.SearchService`. Most are plain
(sync) functions, so FastAPI runs them in its thread pool: encoding and FAISS release the GIL, and searches run
side by side while one writer changes the index. Errors become ``{"error", "detail"}`` bodies here, in one place.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nac_hash.errors import NacHashError
from nac_hash.images import InvalidImageError
from nac_hash.index_data.catalog import ItemNotFoundError
from nac_hash.index_data.search import IndexUnusableError, InvalidQueryError
from nac_hash.index_data.store import IndexBusyError
from nac_hash.service.guard import RequestGuard
from nac_hash.service.metrics import Metrics
from nac_hash.service.routes import items, ops, search
from nac_hash.service.schemas import Problem, code_schema
from nac_hash.service.settings import Settings
from nac_hash.service.state import ReadOnlyIndexError, SearchService

logger = logging.getLogger(__name__)

ERRORS = {422: {"model": Problem}, 400: {"model": Problem}}


def _problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(Problem(error=error, detail=detail).model_dump(), status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """The library's own errors -> 4xx JSON in one place; anything else is a 500 whose detail stays in the log."""
    statuses = {InvalidImageError: 422, InvalidQueryError: 422, ItemNotFoundError: 404, ReadOnlyIndexError: 409,
                NacHashError: 400}
    for error_type, status in statuses.items():
        app.add_exception_handler(error_type, lambda request, e, status=status: _problem(
            status, type(e).__name__, str(e)))
    app.add_exception_handler(IndexBusyError, lambda request, e: _problem(
        503, "IndexBusyError", str(e), headers={"Retry-After": "1"}))
    app.add_exception_handler(IndexUnusableError, lambda request, e: _problem(503, "IndexUnusableError", str(e)))
    # Starlette's own 404, 405 and 400 (a malformed multipart body) too, not only the routes' HTTPExceptions.
    app.add_exception_handler(StarletteHTTPException, lambda request, e: _problem(
        e.status_code, "HTTPException", str(e.detail), headers=e.headers))  # e.g. Allow on 405
    app.add_exception_handler(RequestValidationError, lambda request, e: _problem(
        422, "RequestValidationError", "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
                                                 for err in e.errors())))

    @app.exception_handler(Exception)
    def internal_error(request: Request, e: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem(500, "InternalError", "internal error; see the server log")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service; settings come from the environment unless given."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = SearchService(settings)
        logger.info("serving %s: %d items", settings.index, app.state.service.status()["items"])
        if settings.gc_freeze:
            gc.collect()
            gc.freeze()
        yield
        gc.unfreeze()
        app.state.service.close()
        app.state.service = None

    app = FastAPI(title="nac-hash", summary="Find similar images by Hamming distance between learned 128-bit codes",
                  lifespan=lifespan, responses=ERRORS)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.add_middleware(RequestGuard, settings=settings)  # body limit and write policy, before any body is read
    app.add_middleware(metrics.middleware)  # outermost: refused requests are counted too
    add_error_handlers(app)

    for routes in (search.router, items.router, ops.router):
        app.include_router(routes)
    generate = app.openapi

    def openapi() -> dict:
        """The schema, with codes as long as the served index's once it is open."""
        service = app.state.service
        return code_schema(generate(), service.bits, service.copy_bits) if service is not None else generate()

    app.openapi = openapi
    return app
