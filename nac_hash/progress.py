"""Progress bars that stay readable in a log file.

On a terminal the bar redraws live; when stderr is a file or a pipe (a background run, CI, the quickstart's
log) it prints a line at most every ``FILE_INTERVAL_S`` seconds instead of thousands of redraws.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

FILE_INTERVAL_S = 30.0


def progress_bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, throttled to a few lines per minute when stderr is not a terminal."""
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", FILE_INTERVAL_S)
        kwargs.setdefault("maxinterval", FILE_INTERVAL_S * 2)
    return tqdm(iterable, **kwargs)
