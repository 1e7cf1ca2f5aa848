"""The indexer on generated images and CIFAR-10 JPEGs: build, add, remove, rebuild, bad files, killed writers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, check_exact_knn, write_class_folders
from PIL import Image

from nac_hash.index_data.catalog import ItemNotFoundError
from nac_hash.index_data.config import DEFAULT_DEDUP_DISTANCE, IndexOptions
from nac_hash.index_data.index import IndexTypeError
from nac_hash.index_data.indexer import add, build, info, merge, rebuild, remove
from nac_hash.index_data.search import Searcher
from nac_hash.index_data.store import CheckpointMismatchError, IndexBusyError, IndexDirError, IndexStore

OPTIONS = IndexOptions(progress=False, batch_size=64, workers=4)
BAD_FILES = {"corrupt.jpg": "corrupt header", "truncated.jpg": "truncated", "empty.png": "empty file",
             "notes.png": "not a readable image", "bomb.png": "more than the limit", "strip.png": "times longer",
             "bad\\xff.png": "not valid UTF-8"}  # a file name of bytes that are not UTF-8, as the report prints it


@pytest.fixture(scope="module")
def cifar_sample(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 CIFAR-10 test JPEGs in three class folders."""
    root = tmp_path_factory.mktemp("cifar-sample")
    for name in ("airplane", "cat", "ship"):
        (root / name).mkdir()
        for file in sorted((cifar_root / "test" / name).iterdir())[:100]:
            shutil.copy(file, root / name / file.name)
    return root


def add_bad_files(folder: Path) -> None:
    good = (folder / "class0" / "0000.png").read_bytes()
    jpeg = folder / "tmp.jpg"
    Image.open(folder / "class0" / "0000.png").save(jpeg)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    (folder / "truncated.jpg").write_bytes(jpeg.read_bytes()[:200])
    jpeg.unlink()
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    Image.new("1", (12_000, 12_000)).save(folder / "bomb.png")
    Image.new("L", (1, 300_000)).save(folder / "strip.png")  # 661 bytes that once decoded into 2.3 GB
    (folder / "readme.txt").write_text("ignored: not an image extension")
    (folder / "UPPER.PNG").write_bytes(good)
    (folder / os.fsdecode(b"bad\xff.png")).write_bytes(good)


def all_codes(index_dir: Path, copy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    store = IndexStore(index_dir)
    try:
        return store.catalog.codes(copy=copy)
    finally:
        store.close()


def items_by_path(index_dir: Path) -> dict:
    searcher = Searcher.open(index_dir, with_model=False)
    return {item.path: item for item in searcher.items(range(1, 1000)).values()}


def search_all(index_dir: Path, k: int = 5) -> list[list[tuple[int, int, str]]]:
    """(id, distance, path) of every item's neighbours: a fingerprint of what an index answers."""
    searcher = Searcher.open(index_dir, with_model=False)
    _, codes = searcher.store.catalog.codes()
    return [[(h.id, h.distance, h.path) for h in hits] for hits in searcher.search(codes, k)]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_build_records_items_and_reports_bad_files(class_folders, tmp_path):
    add_bad_files(class_folders)
    report = build([class_folders], tmp_path / "index", OPTIONS)
    assert report.added == 37 and report.total == 37  # 36 class images and UPPER.PNG
    assert {path: reason for path, reason in report.skipped}.keys() == BAD_FILES.keys()
    for path, reason in report.skipped:
        assert BAD_FILES[path] in reason
    saved = json.loads((tmp_path / "index" / "report.json").read_text())
    assert {s["path"] for s in saved["skipped"]} == set(BAD_FILES)

    searcher = Searcher.open(tmp_path / "index")
    items = searcher.items(range(1, 100))
    assert len(items) == 37 and sorted(items) == list(range(1, 38))
    by_path = {item.path: item for item in items.values()}
    item = by_path["class1/0003.png"]
    data = (class_folders / "class1" / "0003.png").read_bytes()
    assert item.label == "class1" and item.root == str(class_folders.resolve())
    assert item.size == len(data) and item.sha256 == hashlib.sha256(data).hexdigest()
    assert by_path["UPPER.PNG"].label is None
    # The stored code is the model's code for the file.
    code = searcher.encode([searcher.decode(data)])
    assert searcher.search(code, 1)[0][0].distance == 0


def test_search_equals_brute_force_on_cifar(cifar_sample, tmp_path):
    build([cifar_sample], tmp_path / "index", OPTIONS)
    ids, codes = all_codes(tmp_path / "index")
    searcher = Searcher.open(tmp_path / "index", with_model=False)
    queries = codes[::7]
    hits = searcher.search(queries, 20)
    distances = np.array([[h.distance for h in row] for row in hits])
    found = np.array([[h.id for h in row] for row in hits])
    check_exact_knn(distances, found, queries, codes, ids, 20)
    labels = {h.label for row in hits for h in row}
    assert labels == {"airplane", "cat", "ship"}


def test_add_encodes_only_new_and_changed_files_and_keeps_ids(class_folders, tmp_path):
    build([class_folders], tmp_path / "index", OPTIONS)
    before = items_by_path(tmp_path / "index")

    write_class_folders(class_folders, classes=4, per_class=12, seed=0)  # adds class3, rewrites the rest as-is
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(class_folders / "class0" / "0005.png")  # changed
    report = add([class_folders], tmp_path / "index", OPTIONS)
    assert (report.added, report.updated, report.unchanged, report.total) == (12, 1, 35, 48)

    after = items_by_path(tmp_path / "index")
    assert all(after[p].id == before[p].id for p in before)  # ids are stable, the changed file's too
    assert after["class0/0005.png"].sha256 != before["class0/0005.png"].sha256
    assert min(after[p].id for p in after if p.startswith("class3/")) > max(i.id for i in before.values())
    again = add([class_folders], tmp_path / "index", OPTIONS)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 48)


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw", "multihash"])
def test_add_remove_rebuild_round_trip(cifar_sample, tmp_path, index_type):
    index = tmp_path / "index"
    options = IndexOptions(progress=False, index_type=index_type)
    sample = tmp_path / "sample"
    shutil.copytree(cifar_sample / "airplane", sample / "airplane")
    build([sample], index, options)
    shutil.copytree(cifar_sample / "cat", sample / "cat")
    add([sample], index, options)
    assert info(index)["items"] == 200 and info(index)["index_type"] == index_type

    removed_path = sample / "cat" / sorted(p.name for p in (sample / "cat").iterdir())[0]
    report = remove(index, ids=[1, 2], paths=[removed_path])
    assert report.removed == 3 and report.total == 197
    ids, codes = all_codes(index)
    assert 1 not in ids and 2 not in ids and len(ids) == 197

    searcher = Searcher.open(index, with_model=False)
    found = {h.id for row in searcher.search(codes, 10) for h in row}
    assert found <= set(ids.tolist())  # removed items are never returned
    rebuild(index, "flat")
    assert info(index)["index_type"] == "flat"
    flat = Searcher.open(index, with_model=False)
    hits = flat.search(codes[:30], 10)
    check_exact_knn(np.array([[h.distance for h in r] for r in hits]), np.array([[h.id for h in r] for r in hits]),
                    codes[:30], codes, ids, 10)


def test_remove_unknown_item_changes_nothing(class_folders, tmp_path):
    build([class_folders], tmp_path / "index", OPTIONS)
    with pytest.raises(ItemNotFoundError, match="999"):
        remove(tmp_path / "index", ids=[1, 999])
    with pytest.raises(ItemNotFoundError, match=r"nope\.png"):
        remove(tmp_path / "index", paths=[class_folders / "nope.png"])
    assert info(tmp_path / "index")["items"] == 36


def test_bad_index_type_fails_before_encoding(class_folders, tmp_path):
    with pytest.raises(IndexTypeError, match="unknown index type"):
        build([class_folders], tmp_path / "index", IndexOptions(progress=False, index_type="BLSH"))
    assert not (tmp_path / "index" / "catalog.sqlite").exists()


def test_missing_folder_and_missing_index_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build([tmp_path / "nowhere"], tmp_path / "index", OPTIONS)
    with pytest.raises(IndexDirError, match="not an nac-hash index"):
        add([tmp_path], tmp_path / "nowhere", OPTIONS)


def test_mmap_search_equals_loaded_search(cifar_sample, tmp_path):
    build([cifar_sample], tmp_path / "index", OPTIONS)
    _, codes = all_codes(tmp_path / "index")
    mapped = Searcher.open(tmp_path / "index", with_model=False, mmap=True).search(codes[:20], 10)
    loaded = Searcher.open(tmp_path / "index", with_model=False).search(codes[:20], 10)
    assert [[(h.id, h.distance) for h in r] for r in mapped] == [[(h.id, h.distance) for h in r] for r in loaded]


def test_missing_faiss_file_is_rebuilt_from_the_codes(class_folders, tmp_path):
    build([class_folders], tmp_path / "index", OPTIONS)
    expected = search_all(tmp_path / "index")
    for file in (tmp_path / "index").glob("faiss-*.index"):
        file.unlink()
    assert search_all(tmp_path / "index") == expected


# A writer killed at each point where the directory is between two states. The hook is patched in a child
# process that SIGKILLs itself there, so nothing of Python's clean-up runs.
KILL_POINTS = {
    "build-encode": ("nac_hash.index_data.indexer", "encode_images", "second_call"),
    "build-before-swap": ("nac_hash.index_data.store", "recover_catalog", "before"),
    "build-after-swap": ("nac_hash.index_data.store", "remove_stale_files", "before"),
    "add-encode": ("nac_hash.index_data.indexer", "encode_images", "second_call"),
    # the new state's FAISS file written and the catalog pointed at it, the transaction not committed
    "add-before-commit": ("nac_hash.index_data.catalog.Catalog", "set_meta", "after"),
    "add-after-commit": ("nac_hash.index_data.store", "remove_stale_files", "before"),
}
CHILD = """
import importlib, os, signal, sys
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import add, build

point, folder, index = sys.argv[1:]
module, name, when = {points}[point]
parent, last = module.rsplit(".", 1)
owner = getattr(importlib.import_module(parent), last) if last[0].isupper() else importlib.import_module(module)
original = getattr(owner, name)
calls = []

def hooked(*args, **kwargs):
    calls.append(1)
    if when == "before" or (when == "second_call" and len(calls) == 2):
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(*args, **kwargs)
    if when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(owner, name, hooked)
options = IndexOptions(progress=False, batch_size=8, workers=2)
(build if point.startswith("build") else add)([folder], index, options)
"""


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_writer_leaves_a_consistent_index(class_folders, tmp_path, point):
    index = tmp_path / "index"
    build([class_folders], index, OPTIONS)
    old = search_all(index)
    write_class_folders(class_folders, classes=5, per_class=12, seed=0)
    child = subprocess.run([sys.executable, "-c", CHILD.format(points=KILL_POINTS), point, str(class_folders),
                            str(index)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr

    committed = point.endswith("after-swap") or point.endswith("after-commit")
    now = search_all(index)
    assert len(now) == (60 if committed else 36)
    if not committed:
        assert now == old
    # The next writer cleans up and carries on.
    report = add([class_folders], index, OPTIONS)
    assert report.total == 60
    assert len(list(index.glob("faiss-*.index"))) == 1 and not list(index.glob(".catalog-*"))


def test_cli_build_killed_mid_way_keeps_previous_index(cifar_sample, tmp_path):
    index = tmp_path / "index"
    build([cifar_sample / "ship"], index, OPTIONS)
    old = search_all(index)
    process = subprocess.Popen([sys.executable, "-m", "nac_hash.cli", "index", "build", str(cifar_sample),
                                "--out", str(index), "--batch-size", "4", "--workers", "1", "--no-progress"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(index.glob(".catalog-*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the build ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert search_all(index) == old


def test_sharded_builds_merge_into_the_same_index(cifar_sample, tmp_path):
    whole = tmp_path / "whole"
    build([cifar_sample], whole, OPTIONS)
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, shard in enumerate(shards):
        build([cifar_sample], shard, dataclasses.replace(OPTIONS, shard=f"{i}/3"))
    sizes = [info(shard)["items"] for shard in shards]
    assert sum(sizes) == 300 and min(sizes) > 50  # disjoint, and roughly even

    report = merge(shards, tmp_path / "merged", index_type="ivf")
    assert report.total == 300 and info(tmp_path / "merged")["index_type"] == "ivf"
    rebuild(tmp_path / "merged", "flat")
    by_path = {item.path: item for item in items_by_path(whole).values()}
    merged = items_by_path(tmp_path / "merged")
    for copy in (False, True):  # the same files with the same codes and copy codes, under new ids
        merged_ids, merged_codes = all_codes(tmp_path / "merged", copy)
        whole_ids, whole_codes = all_codes(whole, copy)
        code_of = dict(zip(whole_ids.tolist(), whole_codes, strict=True))
        for path, item in merged.items():
            np.testing.assert_array_equal(merged_codes[np.searchsorted(merged_ids, item.id)],
                                          code_of[by_path[path].id])
    a, b = search_all(whole, 10), search_all(tmp_path / "merged", 10)
    assert sorted(sorted(d for _, d, _ in row) for row in a) == sorted(sorted(d for _, d, _ in row) for row in b)


def test_merge_refuses_overlapping_shards_and_bad_shard_specs(class_folders, tmp_path):
    build([class_folders], tmp_path / "a", OPTIONS)
    build([class_folders], tmp_path / "b", OPTIONS)
    with pytest.raises(ValueError, match="shards overlap"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    with pytest.raises(ValueError, match="i/n"):
        build([class_folders], tmp_path / "c", dataclasses.replace(OPTIONS, shard="3/3"))
    build([class_folders], tmp_path / "own", dataclasses.replace(OPTIONS, shard="0/2", copy_codes=False))
    build([class_folders], tmp_path / "copies", dataclasses.replace(OPTIONS, shard="1/2"))
    with pytest.raises(CheckpointMismatchError, match="other copy codes"):
        merge([tmp_path / "own", tmp_path / "copies"], tmp_path / "merged")


def test_every_row_holds_a_copy_code_where_the_index_keeps_them(index, class_folders):
    store = IndexStore(index)
    try:
        ids, codes = store.catalog.codes(copy=True)
        assert len(ids) == store.catalog.count() and codes.shape[1] * 8 == store.copies.bits > store.bits
        item = store.catalog.records()[0]
        with pytest.raises(ValueError, match="lack them"), store.writer() as writer:
            writer.add([dataclasses.replace(item, path="new.png", copy_code=None)])
        assert store.catalog.count() == len(ids)  # nothing was written
    finally:
        store.close()


def test_an_index_written_before_copy_codes_still_adds_and_finds_copies_by_its_own_codes(class_folders, tmp_path):
    build([class_folders / "class0"], tmp_path / "old", dataclasses.replace(OPTIONS, copy_codes=False))
    with sqlite3.connect(tmp_path / "old" / "catalog.sqlite") as db:
        db.execute("ALTER TABLE items DROP COLUMN copy_code")  # the schema before copy codes
    report = add([class_folders / "class1", class_folders / "class2"], tmp_path / "old", OPTIONS)
    assert report.added == 24 and report.total == 36
    store = IndexStore(tmp_path / "old")
    try:
        assert not store.catalog.has_copy_column and not store.copies.stored
        assert store.copies.bits == store.bits and store.dedup_distance == DEFAULT_DEDUP_DISTANCE
    finally:
        store.close()


def test_a_writer_commits_at_the_end_of_its_block_or_not_at_all(index):
    store = IndexStore(index)
    before = search_all(index)
    (first_id,) = store.catalog.codes()[0][:1]
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.remove([first_id])
        raise RuntimeError("the block fails: nothing is committed")
    assert search_all(index) == before
    with store.writer() as writer:
        writer.remove([first_id])
    assert writer.removed == 1 and writer.index.ntotal == len(before) - 1
    assert len(search_all(index)) == len(before) - 1
    store.close()


def test_a_second_writer_waits_then_gives_up_saying_so(index):
    store = IndexStore(index)
    with store.writer(), pytest.raises(IndexBusyError, match=r"waited 0\.[0-9] s"), store.writer(timeout_s=0.2):
        pass
    store.close()


def test_only_the_store_takes_the_write_lock():
    """The lock is taken in exactly one module: every other writer goes through index_writer."""
    importers = [path.relative_to(REPO).as_posix() for folder in ("nac_hash", "training", "index_data", "service")
                 for path in (REPO / folder).rglob("*.py") if "index_data.lock" in path.read_text()]
    assert importers == ["index_data/store.py"]
