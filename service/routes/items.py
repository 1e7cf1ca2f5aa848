"""Items: metadata and code, the image file, duplicates, and adding and deleting (writes pass service.guard
first)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse

from nac_hash.service.deps import ItemId, Service
from nac_hash.service.routes.search import read_upload
from nac_hash.service.schemas import (
    MAX_DUPLICATE_DISTANCE,
    DuplicatesResponse,
    HitOut,
    ItemOut,
    ItemWithCode,
    Problem,
)

router = APIRouter()

NOT_FOUND = {404: {"model": Problem}}
WRITE_ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 503: {"model": Problem}}


@router.get("/items/{item_id}", response_model=ItemWithCode, responses=NOT_FOUND)
def get_item(item_id: ItemId, service: Service) -> ItemWithCode:
    item, code = service.item(item_id)
    return ItemWithCode(**ItemOut.of(item).model_dump(), code=code.hex())


@router.head("/items/{item_id}/image", include_in_schema=False)  # the same answer without its body
@router.get("/items/{item_id}/image", response_class=FileResponse, responses=NOT_FOUND | {416: {"model": Problem}})
def get_item_image(item_id: ItemId, service: Service, range_header: Annotated[str | None, Header(
        alias="range", include_in_schema=False)] = None) -> FileResponse:
    """The indexed image file, served only from inside the folder it was indexed from; one byte range at most."""
    file = service.item_file(item_id)
    if range_header is not None and "," in range_header:
        raise HTTPException(416, "only one byte range is served per request",
                            headers={"Content-Range": f"bytes */{file.stat().st_size}"})
    return FileResponse(file, headers={"X-Content-Type-Options": "nosniff"})


@router.post("/items", response_model=ItemOut, status_code=201, responses=WRITE_ERRORS | {413: {"model": Problem}})
def add_item(service: Service, image: Annotated[UploadFile, File()]) -> ItemOut:
    """Upload an image and add it to the index (the same bytes give the same item, whatever the file name).

    Needs the X-API-Key header when the service has a key (see :mod:`nac_hash.service.guard`).
    """
    return ItemOut.of(service.add_image(read_upload(image, service.settings.max_upload_bytes)))


@router.delete("/items/{item_id}", response_model=ItemOut, responses=WRITE_ERRORS | NOT_FOUND)
def delete_item(item_id: ItemId, service: Service) -> ItemOut:
    """Remove an item (and its file, if it was uploaded). Needs the X-API-Key header like POST /items."""
    return ItemOut.of(service.delete(item_id))


@router.get("/items/{item_id}/duplicates", response_model=DuplicatesResponse, responses=NOT_FOUND)
def item_duplicates(item_id: ItemId, service: Service,
                    max_distance: Annotated[int | None, Query(ge=0, le=MAX_DUPLICATE_DISTANCE)] = None,
                    ) -> DuplicatesResponse:
    """Other items whose copy codes lie within `max_distance` of this item's: its likely copies. An index built
    with a retrieval model keeps each item's code from the packaged copy model too, and finds copies by those.
    By default, the distance that model records for copies; at most a quarter of its bits."""
    max_distance = service.duplicate_distance(max_distance)
    hits = service.item_duplicates(item_id, max_distance)
    return DuplicatesResponse(max_distance=max_distance, hits=[HitOut.of(h) for h in hits])


@router.post("/duplicates", response_model=DuplicatesResponse)
def upload_duplicates(service: Service, image: Annotated[UploadFile, File()],
                      # int, not int | None: a multipart field has no null, so the schema must not offer one
                      max_distance: Annotated[int, Form(ge=0, le=MAX_DUPLICATE_DISTANCE)] = None,  # noqa: RUF013
                      ) -> DuplicatesResponse:
    """Items whose copy codes lie within `max_distance` of an uploaded image's: is it already indexed, as a copy?
    By default, the distance the copy codes' model records for copies; at most a quarter of their bits."""
    max_distance = service.duplicate_distance(max_distance)
    hits = service.duplicates(service.copy_query(read_upload(image, service.settings.max_upload_bytes)), max_distance)
    return DuplicatesResponse(max_distance=max_distance, hits=[HitOut.of(h) for h in hits])
