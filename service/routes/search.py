"""POST /search (one image, as multipart or base64 JSON, or a hex code) and POST /search/batch."""

from __future__ import annotations

import base64
import binascii
from functools import partial

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from nac_hash.images import InvalidImageError
from nac_hash.index_data.search import Queries, code_to_hex
from nac_hash.service.deps import AppMetrics, Service
from nac_hash.service.metrics import Stages
from nac_hash.service.schemas import (
    MAX_K,
    BatchSearchRequest,
    BatchSearchResponse,
    HitOut,
    Problem,
    Query,
    SearchOptions,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from nac_hash.service.state import SearchService

router = APIRouter()


MULTIPART_FIELDS = ("image", "k", "max_distance")
SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["image"], "additionalProperties": False,
                "properties": {"image": {"type": "string", "format": "binary"},
                               "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
                               "max_distance": {"type": "integer", "minimum": 0}}}},
        },
    }
}


def read_upload(upload: UploadFile, limit: int) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload is larger than the limit of {limit:,} bytes")
    return data


def _base64_image(service: SearchService, query: Query) -> bytes:
    try:
        data = base64.b64decode(query.image_base64 or "", validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidImageError("image_base64 is not valid base64") from e
    if len(data) > service.settings.max_upload_bytes:
        raise HTTPException(413, f"image is larger than the limit of {service.settings.max_upload_bytes:,} bytes")
    return data


def _query(service: SearchService, query: Query, stages: Stages) -> Queries:
    if query.code is not None:
        return service.searcher.query_codes([query.code])
    return service.query(_base64_image(service, query), stages)


def _search(service: SearchService, queries: Queries, k: int, max_distance: int | None,
            stages: Stages) -> list[SearchResult]:
    codes, logits = queries
    with stages.stage("search"):
        results = service.search(codes, logits, k, max_distance)
    return [SearchResult(query_code=code_to_hex(code), hits=[HitOut.of(h) for h in hits])
            for code, hits in zip(codes, results, strict=True)]


async def _multipart_upload(request: Request, service: SearchService) -> tuple[bytes, SearchOptions]:
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "multipart body needs a file field named 'image'")
    unknown = sorted(set(form) - set(MULTIPART_FIELDS))
    if unknown:
        raise HTTPException(422, f"unknown multipart fields {', '.join(map(repr, unknown))}; the fields are "
                                 f"{', '.join(MULTIPART_FIELDS)}")
    try:
        options = SearchOptions.model_validate({k: form[k] for k in ("k", "max_distance") if k in form})
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from e
    return read_upload(upload, service.settings.max_upload_bytes), options


@router.post("/search", response_model=SearchResponse, openapi_extra=SEARCH_BODY,
             responses={415: {"model": Problem}})
async def search(request: Request, service: Service, metrics: AppMetrics) -> SearchResponse:
    """Neighbours of one image (multipart field `image`, or JSON `image_base64`) or of a hex `code`."""
    stages = Stages(metrics)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        data, options = await _multipart_upload(request, service)
        encode = partial(service.query, data, stages)
    elif content_type and not content_type.startswith("application/json"):  # a raw image body, say
        raise HTTPException(415, f"a {content_type.split(';')[0]} body is not accepted: send the image as "
                                 "multipart/form-data (a file field named 'image') or JSON with image_base64 or code")
    else:
        try:
            options = SearchRequest.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from e
        encode = partial(_query, service, options, stages)
    # Encoding and search in one trip to the thread pool: each trip is a hand-over between threads.
    results = await run_in_threadpool(lambda: _search(service, encode(), options.k, options.max_distance, stages))
    return SearchResponse(**results[0].model_dump(), timings=stages.timings)


def _decode_query(service: SearchService, query: Query, stages: Stages) -> np.ndarray | None:
    """A query's decoded image, or None for a code."""
    if query.code is not None:
        return None
    data = _base64_image(service, query)
    with stages.stage("decode"):
        return service.decode(data)


def _encode_batch(service: SearchService, queries: list[Query], images: list[np.ndarray | None],
                  stages: Stages) -> Queries:
    """Codes and pre-activations of every query: the images in one forward pass, the codes parsed."""
    pixels = [image for image in images if image is not None]
    with stages.stage("encode"):
        encoded = service.searcher.query(np.stack(pixels)) if pixels else None
    parts, rows = [], iter(range(len(pixels)))
    for query, image in zip(queries, images, strict=True):
        if image is None:
            parts.append(service.searcher.query_codes([query.code]))
        else:
            row = [next(rows)]
            parts.append((encoded[0][row], encoded[1][row]))
    return np.concatenate([c for c, _ in parts]), np.concatenate([lg for _, lg in parts])


@router.post("/search/batch", response_model=BatchSearchResponse, responses={422: {"model": Problem}})
async def search_batch(body: BatchSearchRequest, request: Request, service: Service,
                       metrics: AppMetrics) -> BatchSearchResponse | Response:
    """Neighbours of up to 256 queries, each an image as base64 or a hex code; k x queries is at most the
    service's max_batch_hits. Decoding stops when the client has gone."""
    if body.k * len(body.queries) > service.settings.max_batch_hits:
        raise HTTPException(422, f"k x queries = {body.k * len(body.queries):,} hits, more than the limit of "
                                 f"{service.settings.max_batch_hits:,}: ask for fewer neighbours or queries")
    stages = Stages(metrics)
    images = []
    for query in body.queries:
        if await request.is_disconnected():
            return Response(status_code=499)  # nobody reads it: the status is for the access log
        images.append(await run_in_threadpool(_decode_query, service, query, stages))
    queries = await run_in_threadpool(_encode_batch, service, body.queries, images, stages)
    results = await run_in_threadpool(_search, service, queries, body.k, body.max_distance, stages)
    return BatchSearchResponse(results=results, timings=stages.timings)
