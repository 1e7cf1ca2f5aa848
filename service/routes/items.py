"""Items: metadata and code, the image file, and adding and deleting (writes pass service.guard first)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import FileResponse

from nac_hash.service.deps import ItemId, Service
from nac_hash.service.routes.search import read_upload
from nac_hash.service.schemas import ItemOut, ItemWithCode, Problem

router = APIRouter()

NOT_FOUND = {404: {"model": Problem}}
WRITE_ERRORS = {401: {"model": Problem}, 403: {"model": Problem}, 503: {"model": Problem}}


@router.get("/items/{item_id}", response_model=ItemWithCode, responses=NOT_FOUND)
def get_item(item_id: ItemId, service: Service) -> ItemWithCode:
    item, code = service.item(item_id)
    return ItemWithCode(**ItemOut.of(item).model_dump(), code=code.hex())


@router.get("/items/{item_id}/image", response_class=FileResponse, responses=NOT_FOUND)
def get_item_image(item_id: ItemId, service: Service) -> FileResponse:
    """The indexed image file, served only from inside the folder it was indexed from."""
    return FileResponse(service.item_file(item_id), headers={"X-Content-Type-Options": "nosniff"})


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
