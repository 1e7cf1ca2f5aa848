"""HammingIndex against a brute-force popcount reference: exact for flat, recall for approximate types."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BITS, check_exact_knn, clustered_codes

from nac_hash.codes import hamming_distance, pack_bits
from nac_hash.index_data.index import INDEX_TYPES, HammingIndex, IndexTypeError
from nac_hash.index_data.search_params import SearchParams


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = clustered_codes(3000)
    ids = np.arange(len(codes), dtype=np.int64) * 3 + 7  # ids are not positions
    queries = clustered_codes(40, seed=1)
    return codes, ids, queries


def test_flat_matches_brute_force(data):
    codes, ids, queries = data
    index = HammingIndex.build(codes, ids, "flat")
    distances, found = index.search(queries, 25)
    check_exact_knn(distances, found, queries, codes, ids, 25)


def test_flat_with_ties_returns_whole_tie_groups_below_kth_distance():
    codes = pack_bits(np.repeat(np.eye(16, BITS, dtype=np.uint8), 5, axis=0))  # 16 groups of 5 equal codes
    ids = np.arange(len(codes), dtype=np.int64)
    query = codes[:1]
    distances, found = HammingIndex.build(codes, ids).search(query, 7)
    assert distances[0].tolist() == [0] * 5 + [2, 2]
    assert set(found[0, :5].tolist()) == {0, 1, 2, 3, 4}
    assert set(found[0, 5:].tolist()) <= set(range(5, 80))


@pytest.mark.parametrize("index_type", ["ivf", "hnsw", "multihash", "BIVF32"])
def test_approximate_types_recall(data, index_type):
    codes, ids, queries = data
    # Codes of one cluster differ in about 19 bits here; multi-hash with nflip 3 finds all within 15 for sure.
    index = HammingIndex.build(codes, ids, index_type, params=SearchParams(nprobe=8, ef_search=128, nflip=3))
    k = 100
    _, found = index.search(queries, k)
    reference = hamming_distance(queries, codes)
    kth = np.sort(reference, axis=1)[:, k - 1 : k]
    # Recall@k, counting any code within the k-th nearest distance as a true neighbour (ties are interchangeable).
    true = [set(ids[row <= t].tolist()) for row, t in zip(reference, kth[:, 0], strict=True)]
    recall = np.mean([len(set(f[f >= 0].tolist()) & t) / k for f, t in zip(found, true, strict=True)])
    print(f"{index_type}: recall@{k} = {recall:.3f}")
    assert recall > 0.6
    assert np.all(np.isin(found[found >= 0], ids))


@pytest.mark.parametrize("index_type", ["flat", "ivf", "multihash"])
def test_range_search_matches_brute_force(data, index_type):
    codes, ids, queries = data
    index = HammingIndex.build(codes, ids, index_type, params=SearchParams(nprobe=10_000, nflip=3))
    radius = 12
    reference = hamming_distance(queries, codes)
    for (distances, found), row in zip(index.range_search(queries, radius), reference, strict=True):
        assert np.all(distances <= radius)
        np.testing.assert_array_equal(np.sort(distances), distances)
        np.testing.assert_array_equal(row[np.searchsorted(ids, found)], distances)
        # Exhaustive for flat; for multi-hash too, as 4 tables x (nflip 3 + 1) > radius 12 (pigeonhole).
        if index_type in ("flat", "multihash"):
            assert set(found.tolist()) == set(ids[row <= radius].tolist())


def test_hnsw_has_no_radius_search(data):
    codes, ids, queries = data
    with pytest.raises(IndexTypeError, match="radius"):
        HammingIndex.build(codes[:200], ids[:200], "hnsw").range_search(queries, 5)


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_empty_index(index_type):
    index = HammingIndex.build(np.zeros((0, BITS // 8), np.uint8), np.zeros(0, np.int64), index_type)
    distances, ids = index.search(clustered_codes(3), 4)
    assert ids.shape == (3, 4) and np.all(ids == -1) and np.all(distances == BITS + 1)
    if index_type != "hnsw":
        assert all(len(found) == 0 for _, found in index.range_search(clustered_codes(3), 50))


def test_fewer_codes_than_k_pads_with_minus_one(data):
    codes, ids, queries = data
    distances, found = HammingIndex.build(codes[:3], ids[:3]).search(queries[:2], 5)
    assert np.all(found[:, 3:] == -1) and np.all(distances[:, 3:] == BITS + 1)
    assert set(found[0, :3].tolist()) == set(ids[:3].tolist())


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_copy_is_independent(data, index_type):
    codes, ids, queries = data
    index = HammingIndex.build(codes[:2000], ids[:2000], index_type)
    before = index.search(queries, 5)
    copy = index.copy()
    copy.add(codes[2000:], ids[2000:])
    assert (index.ntotal, copy.ntotal) == (2000, 3000)
    for a, b in zip(before, index.search(queries, 5), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_add_then_search_equals_building_at_once(data, index_type, tmp_path):
    codes, ids, queries = data
    whole = HammingIndex.build(codes, ids, index_type)
    grown = HammingIndex.build(codes[:2000], ids[:2000], index_type)
    grown.add(codes[2000:], ids[2000:])
    np.testing.assert_array_equal(grown.ids, ids)
    if index_type == "flat":  # exhaustive either way: the same distances
        np.testing.assert_array_equal(whole.search(queries, 10)[0], grown.search(queries, 10)[0])
    grown.save(tmp_path / "grown.index")
    loaded = HammingIndex.load(tmp_path / "grown.index", ids)
    for a, b in zip(grown.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_add_refuses_ids_out_of_order(data):
    codes, ids, _ = data
    index = HammingIndex.build(codes[:10], ids[:10])
    with pytest.raises(ValueError, match="larger"):
        index.add(codes[10:12], ids[:2])
    with pytest.raises(ValueError, match="codes"):
        index.add(codes[10:12, :8], ids[10:12])


def test_mmap_flat_index_searches_like_loaded_one(data, tmp_path):
    codes, ids, queries = data
    HammingIndex.build(codes, ids).save(tmp_path / "flat.index")
    mapped = HammingIndex.load(tmp_path / "flat.index", ids, mmap=True)
    loaded = HammingIndex.load(tmp_path / "flat.index", ids)
    for a, b in zip(mapped.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_index_type_is_a_clear_error(data):
    codes, ids, _ = data
    with pytest.raises(IndexTypeError, match="unknown index type 'bogus'"):
        HammingIndex.build(codes, ids, "bogus")


def test_ids_must_match_the_stored_codes(data, tmp_path):
    codes, ids, _ = data
    HammingIndex.build(codes, ids).save(tmp_path / "flat.index")
    with pytest.raises(ValueError, match="holds 3000 codes but 10 ids"):
        HammingIndex.load(tmp_path / "flat.index", ids[:10])
