"""The Milvus backend (Milvus Lite on a local file) against the FAISS default, on the same codes."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import check_exact_knn, write_class_folders

from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import add, build, info, rebuild, remove
from nac_hash.index_data.milvus_index import _client
from nac_hash.index_data.search import Searcher
from nac_hash.service.app import create_app
from nac_hash.service.settings import Settings


@pytest.fixture
def milvus_index(class_folders, tmp_path):
    uri = str(tmp_path / "milvus.db")
    build([class_folders], tmp_path / "index", IndexOptions(progress=False, index_type=f"milvus:{uri}"))
    return tmp_path / "index", uri


def hits_of(searcher: Searcher, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    hits = searcher.search(codes, k)
    return np.array([[h.distance for h in row] for row in hits]), np.array([[h.id for h in row] for row in hits])


def test_milvus_search_equals_brute_force_and_faiss(milvus_index, class_folders, tmp_path):
    index, _ = milvus_index
    build([class_folders], tmp_path / "faiss", IndexOptions(progress=False))
    milvus, faiss = Searcher.open(index, with_model=False), Searcher.open(tmp_path / "faiss", with_model=False)
    ids, codes = milvus.store.catalog.codes()
    distances, found = hits_of(milvus, codes, 10)
    check_exact_knn(distances, found, codes, codes, ids, 10)
    np.testing.assert_array_equal(distances, hits_of(faiss, codes, 10)[0])
    assert all(h.path.startswith("class") for row in milvus.search(codes[:3], 5) for h in row)
    for (d_milvus, i_milvus), (d_faiss, i_faiss) in zip(milvus.index.range_search(codes[:5], 40),
                                                        faiss.index.range_search(codes[:5], 40), strict=True):
        np.testing.assert_array_equal(d_milvus, d_faiss)
        assert set(i_milvus.tolist()) == set(i_faiss.tolist())


def test_milvus_add_remove_rebuild_and_stale_collections(milvus_index, class_folders):
    index, uri = milvus_index
    write_class_folders(class_folders, classes=4, seed=0)
    assert add([class_folders], index, IndexOptions(progress=False)).total == 48
    remove(index, ids=[1, 2])
    searcher = Searcher.open(index, with_model=False)
    ids, codes = searcher.store.catalog.codes()
    assert searcher.index.ntotal == 46 and 1 not in ids
    assert {h.id for row in searcher.search(codes, 46) for h in row} == set(ids.tolist())
    with pytest.raises(ValueError, match="BIN_FLAT"):  # Milvus Lite has no IVF; the index is left as it was
        rebuild(index, f"milvus-ivf:{uri}")
    assert info(index)["index_type"] == f"milvus:{uri}"
    rebuild(index)  # into a new collection
    assert Searcher.open(index, with_model=False).index.ntotal == 46
    assert len(_client(uri).list_collections()) == 1  # the collections of older states were dropped


def test_collection_out_of_step_with_the_catalog_is_refilled(milvus_index):
    index, _ = milvus_index
    searcher = Searcher.open(index, with_model=False)
    searcher.index.client.delete(searcher.index.collection, ids=[5])  # e.g. a writer killed half-way
    reopened = Searcher.open(index, with_model=False)
    assert reopened.index.ntotal == 36 and reopened.index.collection == searcher.index.collection  # refilled
    assert len(_client(reopened.index.uri).list_collections()) == 1  # and no new collection left behind


def test_service_on_the_milvus_backend(milvus_index):
    index, _ = milvus_index
    with TestClient(create_app(Settings(index=index))) as client:
        code = client.get("/items/7").json()["code"]
        hits = client.post("/search", json={"code": code, "k": 3}).json()["hits"]
        assert hits[0]["distance"] == 0 and 7 in {h["id"] for h in hits if h["distance"] == 0}
        assert client.delete("/items/7").status_code == 200
        assert 7 not in {h["id"] for h in client.post("/search", json={"code": code, "k": 36}).json()["hits"]}


def test_state_files_are_named_by_engine_and_old_names_still_load(milvus_index, class_folders, tmp_path):
    index, _ = milvus_index
    (state_file,) = index.glob("*.index")
    assert state_file.name.startswith("milvus-") and info(index)["backend"] == "milvus"
    expected = hits_of(Searcher.open(index, with_model=False), Searcher.open(index).encode(
        np.zeros((1, 32, 32, 3), np.uint8)), 5)
    # An index written before state files were named by engine: its Milvus pointer sits in a faiss- file.
    state_file.rename(index / state_file.name.replace("milvus-", "faiss-"))
    searcher = Searcher.open(index, with_model=False)
    np.testing.assert_array_equal(hits_of(searcher, Searcher.open(index).encode(np.zeros((1, 32, 32, 3), np.uint8)),
                                          5)[0], expected[0])
    rebuild(index)  # the next write names its file by engine and releases the old one
    assert [p.name.split("-")[0] for p in index.glob("*.index")] == ["milvus"]
    build([class_folders], tmp_path / "flat", IndexOptions(progress=False))
    assert [p.name.split("-")[0] for p in (tmp_path / "flat").glob("*.index")] == ["faiss"]
