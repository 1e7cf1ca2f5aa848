"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nac_hash.index_data.catalog import Item
from nac_hash.index_data.search import Hit

# The API's limits, in one place: the schema states them, the server enforces them (Settings.max_k may lower MAX_K).
MAX_K = 1000  # the most neighbours one search may ask for
MAX_BATCH_QUERIES = 256  # the most queries of one /search/batch
# The largest duplicates radius: a quarter of the longest code (256 bits); a quarter of the served index's copy
# codes is the limit for it (SearchService.duplicate_distance). Copies sit far closer than that.
MAX_DUPLICATE_DISTANCE = 64


HEX_CODE = r"^[0-9a-fA-F]{4,64}$"  # 16 to 256 bits; the served index's length replaces it (code_schema)


class Query(BaseModel):
    """One query: an image as base64, or a packed code as hex (most significant bit first); exactly one.

    Neither field may be null: the schema says which one is there (``oneOf``), as the validator does.
    """

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["image_base64"]}, {"required": ["code"]}]})

    image_base64: str = Field(default=None, min_length=1,  # type: ignore[assignment]  # absent, never null
                              description="encoded image file (jpg, png, ...) as base64")
    code: str = Field(default=None, pattern=HEX_CODE,  # type: ignore[assignment]
                      description="packed code as hex, e.g. 32 hex digits for 128 bits")

    @model_validator(mode="after")
    def one_of_image_or_code(self) -> Query:
        if (self.image_base64 is None) == (self.code is None):
            raise ValueError("give exactly one of image_base64 and code")
        return self


def code_schema(openapi: dict, bits: int, copy_bits: int) -> dict:
    """``openapi`` made exact for the served index: every code field's pattern its length (bits / 4 hex digits),
    and the duplicates radius at most a quarter of its copy codes' bits."""
    pattern = f"^[0-9a-fA-F]{{{bits // 4}}}$"

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if node.get("pattern") == HEX_CODE:
                node["pattern"] = pattern
            if node.get("maximum") == MAX_DUPLICATE_DISTANCE:
                node["maximum"] = copy_bits // 4
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(openapi)
    return openapi


class SearchOptions(BaseModel):
    k: int = Field(default=10, ge=1, le=MAX_K, description="neighbours to return")
    max_distance: int | None = Field(default=None, ge=0, description="drop neighbours farther than this")


class SearchRequest(Query, SearchOptions):
    """JSON body of POST /search."""


class BatchSearchRequest(SearchOptions):
    """JSON body of POST /search/batch."""

    queries: list[Query] = Field(min_length=1, max_length=MAX_BATCH_QUERIES)


class ItemOut(BaseModel):
    id: int
    path: str
    label: str | None
    size: int
    sha256: str

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(id=item.id, path=item.path, label=item.label, size=item.size, sha256=item.sha256)


class ItemWithCode(ItemOut):
    code: str = Field(description="the item's packed code as hex")


class HitOut(BaseModel):
    id: int
    path: str
    distance: int
    label: str | None

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(id=hit.id, path=hit.path, distance=hit.distance, label=hit.label)


class Timings(BaseModel):
    """Milliseconds spent per stage of the request."""

    decode_ms: float = 0.0
    encode_ms: float = 0.0
    search_ms: float = 0.0


class SearchResult(BaseModel):
    query_code: str
    hits: list[HitOut]


class SearchResponse(SearchResult):
    timings: Timings


class BatchSearchResponse(BaseModel):
    results: list[SearchResult]
    timings: Timings


class DuplicatesResponse(BaseModel):
    max_distance: int
    hits: list[HitOut]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    items: int
    bits: int
    index_type: str


class Problem(BaseModel):
    """Every error response: a message for people and a stable code for programs."""

    error: str
    detail: str
