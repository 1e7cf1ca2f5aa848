"""One forward pass for the query images of concurrent requests.

Each request thread hands its decoded image to :meth:`QueryBatcher.embed` and waits; one encoding thread takes
every image waiting at that moment (up to ``max_batch``) and encodes them together. Nothing waits for a batch
to fill: an idle service encodes each query at once, a busy one encodes whatever queued up during the previous
pass, which turns per-request overhead (Python, the model's small layers) into one cost per batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class QueryBatcher:
    def __init__(self, embed: Callable[[np.ndarray], np.ndarray], max_batch: int = 64) -> None:
        self._embed = embed
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="query-batcher", daemon=True)
        self._thread.start()

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """One (S, S, 3) uint8 image -> its (1, bits) pre-activations, encoded in a batch with its neighbours."""
        future: Future = Future()
        self._queue.put((pixels, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                logits = self._embed(np.stack([pixels for pixels, _ in batch]))
            except Exception as e:  # hand the error to every waiting request
                for _, future in batch:
                    future.set_exception(e)
                continue
            for (_, future), row in zip(batch, logits, strict=True):
                future.set_result(row[None])
