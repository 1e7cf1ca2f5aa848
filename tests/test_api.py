"""The Python API (``import nac_hash``): its docstring examples run, and it agrees with the indexer and searcher."""

from __future__ import annotations

import doctest
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, write_class_folders
from PIL import Image

import nac_hash
from nac_hash import api
from nac_hash.checkpoint import CheckpointError, copy_checkpoint, read_sidecar
from nac_hash.index_data import api as index_api
from nac_hash.index_data.indexer import ItemNotFoundError
from nac_hash.index_data.search import Searcher


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Twelve images in two class folders, and a byte-for-byte copy of one of them."""
    root = write_class_folders(tmp_path_factory.mktemp("photos"), classes=2, per_class=6)
    (root / "class0").rename(root / "cats")
    shutil.copy(root / "cats" / "0000.png", root / "class1" / "copy.png")
    for i, path in enumerate(sorted((root / "cats").glob("*.png"))):
        path.rename(root / "cats" / f"{i}.png")
    return root


def test_model_examples_run():
    result = doctest.testmod(api, raise_on_error=False)
    assert result.attempted >= 4 and result.failed == 0


def test_index_examples_run(photos, tmp_path):
    nac_hash.build_index([photos], tmp_path / "idx")
    result = doctest.testmod(index_api, extraglobs={"photos": photos, "index_dir": tmp_path / "idx"})
    assert result.attempted >= 4 and result.failed == 0


def test_import_loads_no_heavy_library():
    code = "import sys, nac_hash; print(sorted({'torch', 'faiss', 'numpy'} & set(sys.modules)), nac_hash.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.split() == ["[]", nac_hash.__version__]


def test_every_kind_of_image_gives_the_indexers_code(photos):
    model = nac_hash.load_model()
    path = photos / "cats" / "1.png"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    codes = model.encode([path, str(path), path.read_bytes(), Image.open(path), pixels])
    assert codes.shape == (5, model.bits // 8)
    assert (codes == codes[0]).all()
    assert model.encode(path).shape == (1, 16)  # one image is a batch of one
    np.testing.assert_array_equal(model.embed(pixels) > 0, np.unpackbits(codes[:1], axis=1).astype(bool))


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = nac_hash.load_model()
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        model.encode(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="not an image: int"):
        model.encode([3])
    with pytest.raises(CheckpointError):
        nac_hash.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = nac_hash.nope


def test_index_answers_as_the_searcher_does(photos, tmp_path):
    index = nac_hash.build_index([photos], tmp_path / "idx")
    assert len(index) == 13
    query = photos / "class1" / "0003.png"
    (hits,) = index.search(query, k=5)
    searcher = Searcher.open(tmp_path / "idx")
    logits = searcher.embed(index.model.prepare(query))
    (expected,) = searcher.search(np.packbits(logits > 0, axis=1), 5, logits=logits)
    assert list(hits) == list(expected) and hits[0].path == "class1/0003.png" and hits[0].distance == 0
    (by_code,) = index.search_codes(index.model.encode(query), k=1)
    assert by_code[0].distance == 0


def test_add_remove_and_duplicates_change_what_search_finds(photos, tmp_path):
    index = nac_hash.build_index([photos / "cats"], tmp_path / "idx")
    assert len(index) == 6 and index.duplicates(max_distance=0) == []
    report = index.add([photos / "class1" / "copy.png"])  # a single image file
    assert report.added == 1 and len(index) == 7
    (group,) = index.duplicates(max_distance=0)
    assert sorted(Path(m.path).name for m in group) == ["0.png", "copy.png"]
    mirrored = np.asarray(Image.open(photos / "cats" / "0.png"))[:, ::-1]  # found by the copy codes
    (copies,) = index.copies_of(mirrored)
    assert {"0.png", "copy.png"} <= {h.path for h in copies}
    assert all(h.distance <= read_sidecar(copy_checkpoint())["dedup_distance"] for h in copies)
    copy_id = next(h.id for h in index.search(photos / "cats" / "0.png", k=7)[0] if h.path == "copy.png")
    index.remove([copy_id])
    assert len(index) == 6 and all(h.path != "copy.png" for h in index.search(photos / "cats" / "0.png", k=6)[0])
    with pytest.raises(ItemNotFoundError):
        index.remove([copy_id])


def test_every_exported_name_resolves():
    assert set(nac_hash.__all__) == {"__version__", *nac_hash._EXPORTS}
    for name in nac_hash.__all__:
        assert getattr(nac_hash, name) is not None
