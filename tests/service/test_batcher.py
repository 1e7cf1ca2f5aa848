"""The query batcher: concurrent images share forward passes and each request gets its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nac_hash.service.batcher import QueryBatcher


def test_concurrent_queries_share_passes_and_get_their_own_rows():
    passes = []

    def slow_embed(images: np.ndarray) -> np.ndarray:
        passes.append(len(images))
        time.sleep(0.05)
        return images.reshape(len(images), -1)[:, :4].astype(np.float32)  # a row that identifies each image

    batcher = QueryBatcher(slow_embed)
    images = [np.full((2, 2, 3), i, np.uint8) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(batcher.embed, images))
    batcher.close()
    for i, answer in enumerate(answers):
        assert answer.shape == (1, 4) and (answer == i).all()
    assert sum(passes) == 16 and len(passes) < 16  # some passes encoded several queries


def test_an_error_reaches_every_waiting_request_and_the_batcher_goes_on():
    calls = threading.Event()

    def failing_once(images: np.ndarray) -> np.ndarray:
        if not calls.is_set():
            calls.set()
            raise RuntimeError("model failed")
        return np.zeros((len(images), 4), np.float32)

    batcher = QueryBatcher(failing_once)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.embed(np.zeros((2, 2, 3), np.uint8))
    assert batcher.embed(np.zeros((2, 2, 3), np.uint8)).shape == (1, 4)
    batcher.close()
