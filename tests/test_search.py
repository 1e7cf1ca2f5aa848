"""The search API and the `nac-hash index` / `nac-hash search` commands on a small generated index."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nac_hash.checkpoint import default_checkpoint, save_checkpoint
from nac_hash.cli import main
from nac_hash.codes import hamming_distance, pack_codes, unpack_bits
from nac_hash.images import read_image
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import add, build, remove
from nac_hash.index_data.search import Searcher, code_to_hex, parse_hex_code
from nac_hash.index_data.store import CheckpointMismatchError
from nac_hash.model_config import ModelConfig
from nac_hash.models import HashingModel

OPTIONS = IndexOptions(progress=False)


def test_hex_codes_round_trip():
    code = np.arange(16, dtype=np.uint8).reshape(1, 16)
    assert code_to_hex(code[0]) == "000102030405060708090a0b0c0d0e0f"
    np.testing.assert_array_equal(parse_hex_code("0x" + code_to_hex(code[0]).upper(), 128), code)
    with pytest.raises(ValueError, match="64 bits"):
        parse_hex_code("00" * 8, 128)
    with pytest.raises(ValueError, match="not hexadecimal"):
        parse_hex_code("zz" * 16, 128)


def test_top_k_with_max_distance_and_radius_agree_with_brute_force(index):
    searcher = Searcher.open(index, with_model=False)
    ids, codes = searcher.store.catalog.codes()
    reference = hamming_distance(codes[:5], codes)
    limit = int(np.median(reference))
    for row, hits in zip(reference, searcher.search(codes[:5], k=36, max_distance=limit), strict=True):
        assert sorted(h.id for h in hits) == sorted(ids[row <= limit].tolist())
    for row, hits in zip(reference, searcher.radius_search(codes[:5], limit), strict=True):
        assert [h.distance for h in hits] == sorted(row[row <= limit].tolist())
        records = searcher.items([h.id for h in hits])
        assert [(h.file, h.label) for h in hits] == [(records[h.id].file, records[h.id].label) for h in hits]


def test_duplicates_are_every_item_within_the_radius_by_copy_codes_and_follow_writes(index, class_folders):
    searcher = Searcher.open(index)
    ids, codes = searcher.store.catalog.codes(copy=True)
    images = np.stack([read_image(class_folders / "class1" / f"{i:04d}.png", 32) for i in range(3)])
    np.testing.assert_array_equal(searcher.copy_query(images), codes[12:15])  # the indexer's copy codes
    reference = hamming_distance(codes[:5], codes)
    limit = searcher.dedup_distance
    for row, hits in zip(reference, searcher.duplicates(codes[:5], limit), strict=True):
        assert sorted(h.id for h in hits) == sorted(ids[row <= limit].tolist())
        assert [h.distance for h in hits] == sorted(row[row <= limit].tolist())
    remove(index, ids=[int(ids[0])])
    assert searcher.refresh()
    assert int(ids[0]) not in {h.id for h in searcher.duplicates(codes[:1], limit)[0]}


def test_hits_carry_the_metadata_of_items_added_and_removed_after_opening(index, class_folders, tmp_path):
    searcher = Searcher.open(index, with_model=False)
    extra = tmp_path / "extra" / "dogs"
    extra.mkdir(parents=True)
    shutil.copy(class_folders / "class2" / "0007.png", extra / "copy.png")
    add([tmp_path / "extra"], index, OPTIONS)
    remove(index, ids=[3])
    assert searcher.refresh()
    ids, codes = searcher.store.catalog.codes()
    found = {h.id: (h.file, h.label) for h in searcher.search(codes[:1], k=len(ids) + 5)[0]}
    assert found == {i: (r.file, r.label) for i, r in searcher.items(ids.tolist()).items()}
    assert 3 not in found and (extra / "copy.png", "dogs") in found.values()


def test_opening_and_refreshing_read_the_item_ids_once(index, class_folders, tmp_path, monkeypatch):
    from nac_hash.index_data.catalog import Catalog

    reads = []
    snapshot = Catalog.snapshot
    monkeypatch.setattr(Catalog, "snapshot", lambda self: reads.append(1) or snapshot(self))
    searcher = Searcher.open(index, with_model=False)
    assert len(reads) == 1
    extra = tmp_path / "extra" / "dogs"
    extra.mkdir(parents=True)
    shutil.copy(class_folders / "class2" / "0007.png", extra / "copy.png")
    add([tmp_path / "extra"], index, OPTIONS)
    reads.clear()
    assert searcher.refresh() and len(reads) == 1
    np.testing.assert_array_equal(searcher.table.ids, searcher.store.catalog.codes()[0])


def test_query_image_finds_itself(index, class_folders):
    searcher = Searcher.open(index)
    data = (class_folders / "class2" / "0007.png").read_bytes()
    hits = searcher.search(searcher.encode([searcher.decode(data)]), k=3)[0]
    assert hits[0].distance == 0
    assert any(h.path == "class2/0007.png" for h in hits if h.distance == 0)


def test_mismatched_checkpoint_is_a_clear_error(index, tmp_path):
    other = save_checkpoint(HashingModel(ModelConfig(arch="cnn_small", bits=128, image_size=32)), tmp_path / "other")
    with pytest.raises(CheckpointMismatchError, match="was built with checkpoint"):
        Searcher.open(index, other)
    with pytest.raises(CheckpointMismatchError):
        add([tmp_path], index, IndexOptions(progress=False, checkpoint=str(other)))
    assert Searcher.open(index, default_checkpoint()).model is not None


def test_refresh_sees_another_writers_commit(index, class_folders):
    from helpers import write_class_folders

    searcher = Searcher.open(index, with_model=False)
    assert not searcher.refresh()
    write_class_folders(class_folders, classes=4, seed=0)
    add([class_folders], index, OPTIONS)
    assert searcher.refresh()
    assert searcher.index.ntotal == 48
    build([class_folders / "class3"], index, OPTIONS)  # a fresh build renames a new catalog over the old
    assert searcher.refresh()
    assert searcher.index.ntotal == 12 and searcher.store.catalog.count() == 12


def test_cli_search_prints_ranked_neighbours(index, class_folders, capsys):
    query = class_folders / "class1" / "0002.png"
    assert main(["search", str(index), str(query), "-k", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    hits = result[0]["hits"]
    assert len(hits) == 4 and hits[0]["distance"] == 0
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert main(["search", str(index), str(query), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "distance", "file"]
    assert lines[1] == f"{query}:" and len(lines) == 4 and str(class_folders) in lines[2]


def test_cli_index_commands_and_user_errors(index, class_folders, tmp_path, capsys):
    assert main(["index", "info", str(index)]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 36
    assert main(["index", "rebuild", str(index), "--index-type", "ivf"]) == 0
    assert main(["index", "remove", str(index), "--id", "3"]) == 0
    assert "1 removed" in capsys.readouterr().out
    assert main(["index", "remove", str(index), "--id", "3"]) == 2
    assert "not in the index" in capsys.readouterr().err
    assert main(["index", "info", str(tmp_path / "nowhere")]) == 2
    assert "not an nac-hash index" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_text("no image")
    assert main(["search", str(index), str(bad)]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(["search", str(index), str(tmp_path / "missing.jpg")]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["index", "build", str(class_folders), "--out", str(bad)]) == 2  # a file, not a folder
    assert "File exists" in capsys.readouterr().err
    assert main(["index", "build", str(class_folders), "--out", str(tmp_path / "x"), "--index-type", "nope"]) == 2
    assert "unknown index type" in capsys.readouterr().err


def test_reads_do_not_wait_for_an_open_write_transaction(index):
    import threading

    searcher = Searcher.open(index, with_model=False)
    catalog = searcher.store.catalog
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with catalog.transaction():
            catalog.delete([1, 2, 3])
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(10)
        # This thread reads committed rows at once, without the writer's uncommitted delete.
        assert sorted(searcher.items([1, 2, 3, 4])) == [1, 2, 3, 4]
        assert catalog.count() == 36
    finally:
        release.set()
        thread.join()
    assert catalog.count() == 33


def test_ties_are_ordered_by_the_asymmetric_score_for_images_and_shuffled_for_codes(class_folders, tmp_path):
    build([class_folders], tmp_path / "index", OPTIONS)
    searcher = Searcher.open(tmp_path / "index")
    images = [read_image(path, 32) for path in sorted(class_folders.rglob("*.png"))[:3]]
    logits = searcher.embed(images)
    codes = pack_codes(logits)
    tie_groups = 0
    for q, hits in enumerate(searcher.search(codes, k=36, logits=logits)):
        hit_codes = np.stack([np.frombuffer(searcher.store.catalog.code(h.id), np.uint8) for h in hits])
        scores = (unpack_bits(hit_codes).astype(np.float32) * 2 - 1) @ logits[q]
        distances = np.array([h.distance for h in hits])
        np.testing.assert_array_equal(distances, hamming_distance(codes[q : q + 1], hit_codes)[0])
        for a in range(len(hits) - 1):
            assert distances[a] < distances[a + 1] or scores[a] >= scores[a + 1] - 1e-5
        tie_groups += int((np.bincount(distances) >= 3).sum())
    assert tie_groups > 0  # the check above had ties to order

    by_code = searcher.search(codes, k=36)
    assert by_code == searcher.search(codes, k=36)  # deterministic
    in_id_order = []
    for hits in by_code:
        for d in {h.distance for h in hits}:
            ids = [h.id for h in hits if h.distance == d]
            if len(ids) >= 3:
                in_id_order.append(ids == sorted(ids))
    assert in_id_order and not all(in_id_order)  # ties are not listed in folder (id) order
