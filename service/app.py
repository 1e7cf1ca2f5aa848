"""The FastAPI application: `create_app(settings)` builds it; the lifespan opens the index and the model.

Routes are plain (sync) functions, so FastAPI runs them in its thread pool: encoding and FAISS release the GIL,
and searches run side by side while one writer changes the index (see :mod:`nac_hash.service.state`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as FormFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from nac_hash.codes import pack_codes
from nac_hash.errors import NacHashError
from nac_hash.images import InvalidImageError
from nac_hash.index_data.catalog import ItemNotFoundError
from nac_hash.index_data.search import code_to_hex, parse_hex_code
from nac_hash.service.guard import RequestGuard
from nac_hash.service.metrics import Metrics
from nac_hash.service.schemas import (
    MAX_K,
    BatchSearchRequest,
    BatchSearchResponse,
    Health,
    HitOut,
    ItemOut,
    ItemWithCode,
    Problem,
    Query,
    Ready,
    SearchOptions,
    SearchRequest,
    SearchResponse,
    SearchResult,
    Timings,
)
from nac_hash.service.settings import Settings
from nac_hash.service.state import ReadOnlyIndexError, SearchService, WriterBusyError

logger = logging.getLogger(__name__)

ERRORS = {422: {"model": Problem}, 400: {"model": Problem}}
WRITE_ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 503: {"model": Problem}}
SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["image"],
                "properties": {"image": {"type": "string", "format": "binary"},
                               "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
                               "max_distance": {"type": "integer", "minimum": 0}}}},
        },
    }
}


class Stages:
    """Wall time per request stage, recorded in the response and in Prometheus histograms."""

    def __init__(self, metrics: Metrics) -> None:
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
            self.metrics.stage_seconds.labels(name).observe(seconds)


def get_service(request: Request) -> SearchService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, "the index is not loaded yet")
    service.refresh_if_due()
    return service


Service = Annotated[SearchService, Depends(get_service)]
ItemId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="item id")]  # SQLite's integer range


def _read_upload(upload: UploadFile, limit: int) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload is larger than the limit of {limit:,} bytes")
    return data


Encoded = tuple[np.ndarray, np.ndarray]  # packed codes, and pre-activations (NaN for queries given as codes)


def _query_code(service: SearchService, query: Query, stages: Stages) -> Encoded:
    if query.code is not None:
        return (parse_hex_code(query.code, service.searcher.bits),
                np.full((1, service.searcher.bits), np.nan, np.float32))
    try:
        data = base64.b64decode(query.image_base64 or "", validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidImageError("image_base64 is not valid base64") from e
    if len(data) > service.settings.max_upload_bytes:
        raise HTTPException(413, f"image is larger than the limit of {service.settings.max_upload_bytes:,} bytes")
    return _encode(service, data, stages)


def _encode(service: SearchService, data: bytes, stages: Stages) -> Encoded:
    with stages.stage("decode"):
        pixels = service.decode(data)
    with stages.stage("encode"):
        logits = service.searcher.embed([pixels])
    return pack_codes(logits), logits


def _search(service: SearchService, queries: Encoded, k: int, max_distance: int | None,
            stages: Stages) -> list[SearchResult]:
    if k > service.settings.max_k:
        raise HTTPException(422, f"k must be at most {service.settings.max_k}")
    codes, logits = queries
    with stages.stage("search"):
        results = service.searcher.search(codes, k, max_distance, logits)
    return [SearchResult(query_code=code_to_hex(code), hits=[HitOut.of(h) for h in hits])
            for code, hits in zip(codes, results, strict=True)]


def _problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(Problem(error=error, detail=detail).model_dump(), status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Library errors -> 4xx JSON in one place; the detail of anything unexpected stays in the log."""
    statuses = {InvalidImageError: 422, ItemNotFoundError: 404, ReadOnlyIndexError: 409, ValueError: 422,
                NacHashError: 400}
    for error_type, status in statuses.items():
        app.add_exception_handler(error_type, lambda request, e, status=status: _problem(
            status, type(e).__name__, str(e)))
    app.add_exception_handler(WriterBusyError, lambda request, e: _problem(
        503, "WriterBusyError", str(e), headers={"Retry-After": "1"}))
    # Starlette's own 404, 405 and 400 (a malformed multipart body) too, not only the routes' HTTPExceptions.
    app.add_exception_handler(StarletteHTTPException, lambda request, e: _problem(
        e.status_code, "HTTPException", str(e.detail)))
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
        logger.info("serving %s: %d items", settings.index, app.state.service.searcher.index.ntotal)
        yield
        app.state.service.close()
        app.state.service = None

    app = FastAPI(title="nac-hash", summary="Find similar images by Hamming distance between learned 128-bit codes",
                  lifespan=lifespan, responses=ERRORS)
    app.state.settings = settings
    app.state.service = None
    app.add_middleware(RequestGuard, settings=settings)  # body limit and write policy, before any body is read
    app.middleware("http")(metrics.middleware)  # outermost: refused requests are counted too
    add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (resources.files("nac_hash.service") / "static" / "index.html").read_text()

    @app.post("/search", response_model=SearchResponse, openapi_extra=SEARCH_BODY)
    async def search(request: Request, service: Service) -> SearchResponse:
        """Neighbours of one image (multipart field `image`, or JSON `image_base64`) or of a hex `code`."""
        stages = Stages(metrics)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=4)
            upload = form.get("image")
            if not isinstance(upload, FormFile):
                raise HTTPException(422, "multipart body needs a file field named 'image'")
            try:
                options = SearchOptions.model_validate({k: form[k] for k in ("k", "max_distance") if k in form})
            except ValidationError as e:
                raise RequestValidationError(e.errors()) from e
            data = _read_upload(upload, settings.max_upload_bytes)
            queries = await run_in_threadpool(_encode, service, data, stages)
        else:
            try:
                body = SearchRequest.model_validate_json(await request.body())
            except ValidationError as e:
                raise RequestValidationError(e.errors()) from e
            options = body
            queries = await run_in_threadpool(_query_code, service, body, stages)
        results = await run_in_threadpool(_search, service, queries, options.k, options.max_distance, stages)
        return SearchResponse(**results[0].model_dump(), timings=stages.timings)

    @app.post("/search/batch", response_model=BatchSearchResponse)
    def search_batch(body: BatchSearchRequest, service: Service) -> BatchSearchResponse:
        """Neighbours of up to 256 queries, each an image as base64 or a hex code."""
        stages = Stages(metrics)
        encoded = [_query_code(service, query, stages) for query in body.queries]
        queries = (np.concatenate([c for c, _ in encoded]), np.concatenate([lg for _, lg in encoded]))
        return BatchSearchResponse(results=_search(service, queries, body.k, body.max_distance, stages),
                                   timings=stages.timings)

    @app.get("/items/{item_id}", response_model=ItemWithCode, responses={404: {"model": Problem}})
    def get_item(item_id: ItemId, service: Service) -> ItemWithCode:
        item = service.searcher.items([item_id]).get(item_id)
        code = service.searcher.store.catalog.code(item_id)
        if item is None or code is None:
            raise ItemNotFoundError(f"no item with id {item_id}")
        return ItemWithCode(**ItemOut.of(item).model_dump(), code=code.hex())

    @app.get("/items/{item_id}/image", response_class=FileResponse, responses={404: {"model": Problem}})
    def get_item_image(item_id: ItemId, service: Service) -> FileResponse:
        """The indexed image file, served only from inside the folder it was indexed from."""
        item = service.searcher.items([item_id]).get(item_id)
        if item is None:
            raise ItemNotFoundError(f"no item with id {item_id}")
        file = item.file.resolve()
        if not file.is_relative_to(Path(item.root).resolve()) or not file.is_file():
            raise ItemNotFoundError(f"the image file of item {item_id} is not available")
        return FileResponse(file, headers={"X-Content-Type-Options": "nosniff"})

    @app.post("/items", response_model=ItemOut, status_code=201, responses=WRITE_ERRORS | {413: {"model": Problem}})
    def add_item(service: Service, image: Annotated[UploadFile, File()]) -> ItemOut:
        """Upload an image and add it to the index (the same bytes give the same item, whatever the file name).

        Needs the X-API-Key header when the service has a key (see :mod:`nac_hash.service.guard`).
        """
        return ItemOut.of(service.add_image(_read_upload(image, settings.max_upload_bytes)))

    @app.delete("/items/{item_id}", response_model=ItemOut, responses=WRITE_ERRORS | {404: {"model": Problem}})
    def delete_item(item_id: ItemId, service: Service) -> ItemOut:
        """Remove an item (and its file, if it was uploaded). Needs the X-API-Key header like POST /items."""
        return ItemOut.of(service.delete(item_id))

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """The process is up."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Ready, responses={503: {"model": Problem}})
    async def readyz(service: Service) -> Ready:
        """Model and index are loaded."""
        return Ready(status="ready", items=service.searcher.index.ntotal, bits=service.searcher.bits,
                     index_type=service.searcher.store.meta["index_type"])

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return metrics.response()

    return app
