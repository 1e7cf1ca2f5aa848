"""The one writer lock of an index directory, shared by the indexer, the service and the CLI."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "write.lock"


@contextmanager
def write_lock(index_dir: str | Path, wait: bool = True, timeout_s: float | None = None) -> Iterator[bool]:
    """Exclusive lock for changing ``index_dir``, across processes and threads (flock on a lock file).

    Yields whether the lock is held: always with ``wait`` and no ``timeout_s``; False when another writer
    has it and ``wait`` is False or ``timeout_s`` seconds passed.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with open(index_dir / LOCK_NAME, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait and deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if not wait or time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
