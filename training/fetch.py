"""Download a file whose checksum is known: resumed after a broken transfer, verified, then renamed into place.

Written here rather than taken from torchvision's ``download_url`` because that starts over after any broken
transfer and cannot name what to do when the machine is offline; this one asks the server for the missing
bytes (an HTTP Range request), starts over where the server ignores that, and never leaves a partial or
corrupt file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from nac_hash.errors import NacHashError
from nac_hash.progress import progress_bar

logger = logging.getLogger(__name__)

CHUNK = 1 << 16
ATTEMPTS = 4
TIMEOUT_S = 60


class DownloadError(NacHashError):
    """A file could not be downloaded, or what arrived is not the file expected."""


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _transfer(url: str, partial: Path, progress: bool) -> None:
    """Append the rest of ``url`` to ``partial`` (from its current size), or rewrite it where the server sends
    the whole file. Raises OSError or http.client.HTTPException when the transfer breaks."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the file is complete
            return
        raise
    with response:
        if response.status != 206:
            offset = 0  # the server sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(partial, "ab" if offset else "wb") as f, progress_bar(
                total=total, initial=offset, unit="B", unit_scale=True, desc=Path(url).name,
                disable=not progress) as bar:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and partial.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - partial.stat().st_size)


def fetch(url: str, target: Path, md5: str, progress: bool = True) -> Path:
    """``target``, downloaded from ``url`` unless already there with checksum ``md5``.

    A broken transfer is resumed up to ``ATTEMPTS`` times; the bytes stay in ``target.part`` until their
    checksum is right, so an interrupted run resumes where it stopped.

    Raises:
        DownloadError: the server cannot be reached (offline), refuses, or sends a file with another checksum.
    """
    target = Path(target)
    if target.is_file() and md5_of(target) == md5:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _transfer(url, partial, progress)
            break
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{url} answered {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise DownloadError(f"cannot reach {url} ({e.reason}): offline?") from e
        except (OSError, http.client.HTTPException) as e:
            logger.warning("download of %s broke (%s); attempt %d of %d resumes it", url, e or type(e).__name__,
                           attempt, ATTEMPTS)
    else:
        raise DownloadError(f"download of {url} broke {ATTEMPTS} times; run again to resume it")
    found = md5_of(partial)
    if found != md5:
        partial.unlink()
        raise DownloadError(f"{url} sent a file with md5 {found}, not the expected {md5}; it was deleted")
    os.replace(partial, target)
    return target
