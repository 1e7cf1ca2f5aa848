"""Service settings, from environment variables prefixed ``NAC_HASH_`` (``NAC_HASH_INDEX=/data/idx``).

Search-time knobs nest under ``NAC_HASH_SEARCH__`` (``NAC_HASH_SEARCH__NPROBE=32``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from nac_hash.images import DEFAULT_MAX_PIXELS
from nac_hash.index_data.search_params import SearchParams


class Settings(BaseSettings):
    """Everything `nac-hash serve` can be told.

    Attributes:
        index: index directory to serve (built with `nac-hash index build`).
        checkpoint: model encoding queries (default: the one the index was built with).
        api_key: when set, POST /items and DELETE /items need it in the X-API-Key header.
        max_upload_bytes: larger uploads get 413.
        max_pixels: larger images get 422 (decompression bombs).
        max_k: the largest k a search may ask for.
        threads: FAISS search threads (default: all cores).
        mmap: memory-map a flat index read-only; mutations are refused then.
        search: search-time knobs of approximate index types.
    """

    model_config = SettingsConfigDict(env_prefix="NAC_HASH_", env_nested_delimiter="__")

    index: Path
    checkpoint: Path | None = None
    api_key: SecretStr | None = None
    max_upload_bytes: int = Field(default=20 * 2**20, gt=0)
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, gt=0)
    max_k: int = Field(default=1000, ge=1)
    threads: int | None = Field(default=None, ge=1)
    mmap: bool = False
    search: SearchParams = SearchParams()

    @property
    def uploads(self) -> Path:
        """Where POST /items stores uploaded images: a folder of the index, indexed like any other."""
        return self.index / "uploads"
