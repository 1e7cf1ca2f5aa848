import itertools

import numpy as np
import pytest

from nac_hash.codes import pack_bits
from nac_hash.metrics import cosine_map, evaluate_retrieval, relevance

BITS = 16


def codes_at(distances: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A zero query code and database codes at the given Hamming distances from it."""
    database = np.zeros((len(distances), BITS), np.uint8)
    for i, d in enumerate(distances):
        database[i, :d] = 1
    return pack_bits(np.zeros((1, BITS), np.uint8)), pack_bits(database)


def average_precision(relevant_in_rank_order) -> float:
    hits, total = 0, 0.0
    for rank, rel in enumerate(relevant_in_rank_order, start=1):
        if rel:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def test_hand_computed_ap_with_ties_broken_by_database_position():
    query, database = codes_at([0, 1, 1, 2])
    metrics = evaluate_retrieval(query, database, np.array([0]), np.array([0, 1, 0, 1]), map_ks=(2,),
                                 precision_ks=(2,))
    assert metrics.map_all == pytest.approx((1 + 2 / 3) / 2)
    assert metrics.map_at[2] == pytest.approx(1.0)
    assert metrics.precision_at[2] == pytest.approx(0.5)
    # Tie-aware: the relevant item of the distance-1 pair sits at rank 2 or 3 with equal chance.
    assert metrics.tie_aware_map == pytest.approx((1 + (2 / 2 + 2 / 3) / 2) / 2)


def test_database_order_changes_ties_but_not_tie_aware_map():
    query, database = codes_at([0, 1, 1, 2])
    swapped = evaluate_retrieval(query, database, np.array([0]), np.array([0, 0, 1, 1]))
    assert swapped.map_all == pytest.approx(1.0)
    assert swapped.tie_aware_map == pytest.approx((1 + (2 / 2 + 2 / 3) / 2) / 2)


def test_query_without_relevant_items_scores_zero_and_counts():
    query, database = codes_at([0, 1, 2])
    queries = np.concatenate([query, query])
    metrics = evaluate_retrieval(queries, database, np.array([0, 5]), np.array([0, 1, 1]))
    assert metrics.map_all == pytest.approx(0.5)
    assert metrics.tie_aware_map == pytest.approx(0.5)


def test_tie_aware_map_equals_mean_over_all_tie_orders():
    rng = np.random.default_rng(3)
    distances = rng.integers(0, 3, 7).tolist()
    labels = rng.integers(0, 2, 7)
    query, database = codes_at(distances)
    orders = [p for p in itertools.permutations(range(7))
              if all(distances[a] <= distances[b] for a, b in itertools.pairwise(p))]
    expected = np.mean([average_precision([labels[i] == 0 for i in p]) for p in orders])
    metrics = evaluate_retrieval(query, database, np.array([0]), labels)
    assert metrics.tie_aware_map == pytest.approx(expected)


def test_matches_slow_reference_on_random_codes():
    rng = np.random.default_rng(0)
    q_bits, d_bits = rng.integers(0, 2, (6, BITS)), rng.integers(0, 2, (40, BITS))
    q_labels, d_labels = rng.integers(0, 3, 6), rng.integers(0, 3, 40)
    metrics = evaluate_retrieval(pack_bits(q_bits), pack_bits(d_bits), q_labels, d_labels, map_ks=(10,),
                                 precision_ks=(10,))
    aps, aps_10, precisions = [], [], []
    for q, label in zip(q_bits, q_labels, strict=True):
        distance = (q != d_bits).sum(1)
        order = sorted(range(40), key=lambda i: (distance[i], i))
        ranked = [d_labels[i] == label for i in order]
        aps.append(average_precision(ranked))
        aps_10.append(average_precision(ranked[:10]))
        precisions.append(sum(ranked[:10]) / 10)
    assert metrics.map_all == pytest.approx(np.mean(aps))
    assert metrics.map_at[10] == pytest.approx(np.mean(aps_10))
    assert metrics.precision_at[10] == pytest.approx(np.mean(precisions))
    assert metrics.distinct_database_codes == len({tuple(b) for b in d_bits})


def test_multi_label_relevance_is_any_shared_label():
    query = np.array([[1, 0, 1]])
    database = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 1]])
    assert relevance(query, database).tolist() == [[False, True, True]]
    with pytest.raises(ValueError):
        relevance(np.array([1]), database)


def test_precision_recall_points_by_radius():
    query, database = codes_at([0, 1, 1, 2])
    metrics = evaluate_retrieval(query, database, np.array([0]), np.array([0, 1, 0, 1]))
    by_radius = {p["radius"]: p for p in metrics.pr_curve}
    assert by_radius[0] == {"radius": 0, "precision": 1.0, "recall": 0.5}
    assert by_radius[1]["precision"] == pytest.approx(2 / 3)
    assert by_radius[1]["recall"] == pytest.approx(1.0)
    assert by_radius[BITS]["precision"] == pytest.approx(0.5)


def test_cosine_ranking_of_sign_vectors_equals_the_hamming_ranking():
    """For +-1 vectors the cosine is 1 - 2 * Hamming / D, so both rankings and their mAP agree exactly."""
    rng = np.random.default_rng(3)
    bits = (rng.random((300, 64)) < 0.5).astype(np.uint8)
    labels = rng.integers(0, 4, 300)
    codes = pack_bits(bits)
    hamming = evaluate_retrieval(codes[:50], codes[50:], labels[:50], labels[50:], map_ks=(100,))
    cosine = cosine_map(bits[:50] * 2.0 - 1, bits[50:] * 2.0 - 1, labels[:50], labels[50:], map_ks=(100,))
    assert cosine["map_all"] == pytest.approx(hamming.map_all, abs=1e-12)
    assert cosine["map@100"] == pytest.approx(hamming.map_at[100], abs=1e-12)
