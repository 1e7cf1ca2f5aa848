"""Service settings, from environment variables prefixed ``NAC_HASH_`` (``NAC_HASH_INDEX=/data/idx``).

Search-time knobs nest under ``NAC_HASH_SEARCH__`` (``NAC_HASH_SEARCH__NPROBE=32``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nac_hash.images import DEFAULT_MAX_PIXELS
from nac_hash.index_data.search_params import SearchParams
from nac_hash.service.schemas import MAX_K

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class Settings(BaseSettings):
    """Everything `nac-hash serve` can be told.

    Attributes:
        index: index directory to serve (built with `nac-hash index build`).
        checkpoint: model encoding queries (default: the one the index was built with).
        api_key: when set, POST /items and DELETE /items need it in the X-API-Key header (an empty key is
            refused at start-up).
        host: address `nac-hash serve` binds.
        port: port `nac-hash serve` binds.
        allow_open_writes: let writes through without an API key on a non-loopback address (on loopback
            they always are).
        allowed_hosts: host names (the Host header without its port) writes may name besides the loopback
            names and ``host``, for example the name a reverse proxy serves; comma-separated in the
            environment (``NAC_HASH_ALLOWED_HOSTS=search.example.com``). Any other Host is refused before a
            write, which defeats DNS rebinding (a page of evil.example whose name now points at 127.0.0.1).
        writer_wait_s: how long a write waits for the index's writer lock before it gets 503.
        max_upload_bytes: larger uploads get 413.
        max_pixels: larger images get 422 (decompression bombs).
        max_decoded_bytes: images whose decoding would take more memory get 422 (JPEGs count at the reduced
            scale they decode at; other formats decode whole). The model reads 32 x 32 pixels.
        decode_slots: images decoded at once (default: the cores); more requests wait for a slot.
        max_batch_hits: the most hits one /search/batch may ask for (k x queries), which bounds its response.
        max_waiting_writes: writes waiting for the writer at once; more get 503 at once, so that waiting writes
            never take all the worker threads that searches and health checks need.
        max_query_batch: the most query images encoded in one forward pass (batch_queries).
        header_timeout_s: a connection whose request head is not whole this long after it opened (or after
            its previous response) is closed (slowloris).
        body_timeout_s: a request body not whole this long after its head gets 408 and the connection closes.
        max_connections: open connections and requests at once; past them a request gets 503 (uvicorn's
            limit_concurrency).
        keep_alive_s: how long an idle keep-alive connection stays open.
        max_k: the largest k a search may ask for (at most the API schema's 1,000).
        refresh_s: how often searches check for changes that another process (the CLI) committed.
        batch_queries: encode the query images of concurrent requests in one forward pass (service.batcher).
        threads: FAISS search threads (default: all cores).
        gc_freeze: after start-up, move every object then alive (torch, FastAPI, the index) out of the garbage
            collector's sight (gc.freeze): a full collection otherwise walks about 380,000 of them, a pause of
            100 to 250 ms for every request in flight, and set the p99 of code searches.
        mmap: memory-map a flat index read-only; mutations are refused then.
        search: search-time knobs of approximate index types.
    """

    model_config = SettingsConfigDict(env_prefix="NAC_HASH_", env_nested_delimiter="__")

    index: Path
    checkpoint: Path | None = None
    api_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    allow_open_writes: bool = False
    allowed_hosts: Annotated[list[str], NoDecode] = []
    writer_wait_s: float = Field(default=5.0, gt=0)
    max_upload_bytes: int = Field(default=20 * 2**20, gt=0)
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, gt=0)
    max_decoded_bytes: int = Field(default=32 * 2**20, gt=0)
    decode_slots: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    max_batch_hits: int = Field(default=25_000, ge=1)
    max_waiting_writes: int = Field(default=4, ge=1)
    max_query_batch: int = Field(default=64, ge=1)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=256, ge=1)
    keep_alive_s: float = Field(default=5.0, gt=0)
    max_k: int = Field(default=MAX_K, ge=1, le=MAX_K)
    refresh_s: float = Field(default=1.0, gt=0)
    batch_queries: bool = True
    threads: int | None = Field(default=None, ge=1)
    gc_freeze: bool = True
    mmap: bool = False
    search: SearchParams = SearchParams()

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("NAC_HASH_API_KEY is empty or blank; set a key, or unset it")
        if key is not None and key.get_secret_value() != key.get_secret_value().strip():
            raise ValueError("NAC_HASH_API_KEY starts or ends with white space, which no HTTP client can send")
        return key

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, hosts: str | list[str]) -> list[str]:
        names = hosts.split(",") if isinstance(hosts, str) else hosts
        return [name.strip().lower() for name in names if name.strip()]

    @property
    def write_hosts(self) -> frozenset[str]:
        """The host names a write's Host header may name: loopback, the bound address, ``allowed_hosts``."""
        bound = set() if self.host in WILDCARD_HOSTS else {self.host.lower()}
        return LOOPBACK_HOSTS | bound | set(self.allowed_hosts)

    @property
    def open_writes(self) -> bool:
        """Whether writes need no key: on a loopback address, or when the operator allowed it."""
        return self.allow_open_writes or self.host in LOOPBACK_HOSTS

    @property
    def uploads(self) -> Path:
        """Where POST /items stores uploaded images: a folder of the index, indexed like any other."""
        return self.index / "uploads"
