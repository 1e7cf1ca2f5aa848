import numpy as np
import pytest

from nac_hash.training.splits import get_protocol, load_split, make_split, save_split


def cifar_like_labels(per_class: int = 60, classes: int = 10) -> np.ndarray:
    return np.repeat(np.arange(classes), per_class)


def test_per_class_protocol_counts_and_disjointness():
    labels = cifar_like_labels()
    split = make_split(get_protocol("cifar10-nac"), labels, np.zeros(len(labels), bool), seed=0, queries=10,
                       train=5)
    assert np.bincount(labels[split.query]).tolist() == [10] * 10
    assert np.bincount(labels[split.train]).tolist() == [5] * 10
    assert len(split.database) == 500 and not set(split.query) & set(split.database)
    assert set(split.train) <= set(split.database)
    # Database order is shuffled, so Hamming ties are not broken in class order.
    assert not np.all(np.diff(labels[split.database]) >= 0)


def test_split_is_determined_by_seed():
    labels = cifar_like_labels()
    protocol, is_test = get_protocol("cifar10-ii"), np.zeros(len(labels), bool)
    a, b = (make_split(protocol, labels, is_test, 3, 10, 5) for _ in range(2))
    c = make_split(protocol, labels, is_test, 4, 10, 5)
    assert np.array_equal(a.query, b.query) and np.array_equal(a.database, b.database)
    assert not np.array_equal(a.query, c.query)


def test_official_protocol_uses_the_test_images_as_queries():
    labels = cifar_like_labels(6)
    is_test = np.tile([False] * 5 + [True], 10)
    split = make_split(get_protocol("cifar10-i"), labels, is_test, 0)
    assert sorted(split.query) == np.flatnonzero(is_test).tolist()
    assert sorted(split.database) == sorted(split.train) == np.flatnonzero(~is_test).tolist()


def test_too_small_classes_and_unknown_protocols_are_errors():
    with pytest.raises(ValueError, match="fewer"):
        make_split(get_protocol("cifar10-nac"), cifar_like_labels(), np.zeros(600, bool), 0)
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("imagenet")


def test_split_file_round_trip(tmp_path):
    labels = np.zeros((100, 24), np.uint8)
    split = make_split(get_protocol("flickr25k"), labels, np.zeros(100, bool), 7, queries=20, train=30)
    save_split(split, tmp_path / "split.npz")
    loaded = load_split(tmp_path / "split.npz")
    assert loaded.protocol == "flickr25k" and loaded.seed == 7
    for name in ("train", "query", "database"):
        assert np.array_equal(getattr(loaded, name), getattr(split, name))


def test_a_folder_trains_on_every_image_that_is_not_a_query_however_unequal_its_classes():
    labels = np.repeat([0, 1, 2], [10, 200, 40])
    split = make_split(get_protocol("folder"), labels, np.zeros(len(labels), bool), seed=0)
    assert np.bincount(labels[split.query]).tolist() == [1, 1, 1]  # a tenth of the smallest class
    np.testing.assert_array_equal(split.train, np.sort(split.database))
    assert len(split.train) == 247
