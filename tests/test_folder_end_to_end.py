"""A generated class-folder set in each layout: the indexer, `nac-hash eval` and `nac-hash bench map` score the
same codes to the same mAP, and the folder's layout, classes and split are what the user laid out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import write_class_folders

from nac_hash.cli import main
from nac_hash.index_data.catalog import Catalog
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import build
from nac_hash.training.datasets import load_image_folder
from nac_hash.training.scoring import score_codes
from nac_hash.training.splits import load_split


def classes_layout(root: Path) -> Path:
    return write_class_folders(root, classes=3, per_class=50)  # ITQ's 128 bits need 128 training images


def split_layout(root: Path) -> Path:
    write_class_folders(root / "train", classes=3, per_class=44, seed=0)
    write_class_folders(root / "test", classes=3, per_class=4, seed=1)
    return root


@pytest.mark.parametrize(("make", "layout", "queries"), [(classes_layout, "classes", 15), (split_layout, "split", 12)])
def test_index_eval_and_bench_map_agree(make, layout, queries, tmp_path, capsys):
    root = make(tmp_path / "images")
    eval_out = tmp_path / "eval.json"
    assert main(["eval", "--dataset", "folder", "--data-root", str(root), "--baselines", "lsh,itq,phash",
                 "--out", str(eval_out), "--device", "cpu"]) == 0
    evaluated = json.loads(eval_out.read_text())
    assert evaluated["protocol"] == "folder" and evaluated["dataset"] == f"folder images ({layout} layout)"
    assert evaluated["methods"]["nac"]["num_queries"] == queries
    assert set(evaluated["methods"]) == {"nac", "lsh", "itq", "phash"}

    bench_out = tmp_path / "bench"
    assert main(["bench", "map", "--dataset", "folder", "--root", str(root), "--methods", "nac,lsh,itq,phash",
                 "--out", str(bench_out), "--device", "cpu"]) == 0
    rows = {r["method"]: r for r in json.loads((bench_out / "results.json").read_text())["rows"]}
    for method, scores in evaluated["methods"].items():
        assert rows[method]["map_all"] == pytest.approx(scores["map_all"], abs=1e-12), method

    # The indexer's codes, put in the dataset's order, score the same on eval's split.
    build([root], tmp_path / "index", IndexOptions(progress=False))
    catalog = Catalog(tmp_path / "index" / "catalog.sqlite")
    _, codes, files, _ = catalog.index_rows()
    data = load_image_folder(root, 32)
    by_path = {str(Path(f).relative_to(root)): code for f, code in zip(files, codes, strict=True)}
    indexed = np.stack([by_path[p] for p in data.paths])
    split = load_split(tmp_path / "eval.split.npz")
    assert score_codes(indexed, data, split, None)["map_all"] == pytest.approx(evaluated["methods"]["nac"]["map_all"],
                                                                               abs=1e-12)


def test_split_layout_uses_test_images_as_queries(tmp_path):
    data = load_image_folder(split_layout(tmp_path / "images"), 32)
    assert data.class_names == ["class0", "class1", "class2"]
    assert data.is_test.sum() == 12 and all(p.startswith("test/") for p in np.array(data.paths)[data.is_test])


def test_unlabelled_folder_trains_but_is_not_scored(tmp_path, capsys):
    root = tmp_path / "loose"
    write_class_folders(root, classes=1, per_class=10)
    for image in (root / "class0").iterdir():
        image.rename(root / image.name)  # images straight in the root: no classes
    assert main(["eval", "--dataset", "folder", "--data-root", str(root), "--device", "cpu",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "no class labels" in capsys.readouterr().err
    assert main(["train", "--dataset", "folder", "--data-root", str(root), "--arch", "cnn_small", "--bits", "16",
                 "--epochs", "1", "--batch-size", "5", "--out-dir", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_official_protocol_on_a_split_folder(tmp_path):
    root = split_layout(tmp_path / "images")
    out = tmp_path / "eval.json"
    assert main(["eval", "--dataset", "folder", "--data-root", str(root), "--protocol", "cifar10-i",
                 "--out", str(out), "--device", "cpu"]) == 0
    scores = json.loads(out.read_text())["methods"]["nac"]
    assert (scores["num_queries"], scores["database_size"]) == (12, 132)


def train_folder(root: Path, out: Path, *options: str) -> list[str]:
    return ["train", "--dataset", "folder", "--data-root", str(root), "--arch", "cnn_small", "--bits", "16",
            "--batch-size", "8", "--out-dir", str(out), "--device", "cpu", *options]


def test_user_errors_name_the_option_and_runs_keep_their_model(class_folders, tmp_path, capsys):
    # Too few images for the counts asked: the class by name, the options to change.
    assert main(train_folder(class_folders, tmp_path / "a", "--queries", "10", "--train-images", "5")) == 2
    error = capsys.readouterr().err
    assert "class class0 has 12 images" in error and "--queries" in error and "per class" in error
    assert error.count("\n") == 1 and "Traceback" not in error
    # No queries: nothing to evaluate, and the model is still written.
    assert main(train_folder(class_folders, tmp_path / "b", "--queries", "0", "--epochs", "2")) == 0
    assert (tmp_path / "b" / "model.safetensors").is_file()
    # One epoch: the warm-up default follows the epochs.
    assert main(train_folder(class_folders, tmp_path / "c", "--epochs", "1")) == 0
    assert json.loads((tmp_path / "c" / "model.json").read_text())["training"]["warmup_epochs"] == 0
    assert main(train_folder(class_folders, tmp_path / "d", "--epochs", "4", "--warmup-epochs", "9")) == 2
    assert "--warmup-epochs" in capsys.readouterr().err


def test_a_baseline_too_big_for_a_small_folder_is_skipped_not_fatal(tmp_path, capsys):
    root = write_class_folders(tmp_path / "images", classes=3, per_class=20)  # 48 training images < 128 bits
    eval_out = tmp_path / "eval.json"
    assert main(["eval", "--dataset", "folder", "--data-root", str(root), "--baselines", "lsh,itq",
                 "--out", str(eval_out), "--device", "cpu"]) == 0
    evaluated = json.loads(eval_out.read_text())
    assert set(evaluated["methods"]) == {"nac", "lsh"}
    assert "at least 128 training images" in evaluated["skipped_baselines"]["itq"]
    assert "itq      skipped: ITQ at 128 bits" in capsys.readouterr().out

    bench_out = tmp_path / "bench"
    assert main(["bench", "map", "--dataset", "folder", "--root", str(root), "--methods", "nac,itq,lsh",
                 "--out", str(bench_out), "--device", "cpu"]) == 0
    results = json.loads((bench_out / "results.json").read_text())
    assert [row["method"] for row in results["rows"]] == ["nac", "lsh"]
    assert [(s["method"], s["bits"]) for s in results["skipped"]] == [("itq", 128)]


def test_bench_map_scores_float_features_and_linear_accuracy(tmp_path, capsys):
    root = write_class_folders(tmp_path / "images", classes=3, per_class=40)
    out = tmp_path / "bench"
    assert main(["bench", "map", "--dataset", "folder", "--root", str(root), "--methods", "nac,lsh",
                 "--features", "--linear", "--out", str(out), "--device", "cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    nac, lsh = results["rows"]
    assert set(results["training"]) == {"nac"}  # how each learned method's checkpoint was trained
    assert set(results["training"]["nac"]) == {"command", "epochs", "time_budget", "threads", "cpu", "earlier_legs"}
    # The classes differ in colour, which the default model's features keep: far above chance (1/3).
    assert nac["linear_accuracy"] > 0.9 and nac["float_map_all"] > 0.6
    assert "float_map_all" not in lsh and "linear_accuracy" not in lsh  # pixel baselines have no features
    assert "float features by cosine" in capsys.readouterr().out


def test_index_build_says_when_its_model_was_trained_on_other_images(class_folders, tmp_path, capsys):
    assert main(["index", "build", str(class_folders), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith("note: this model was trained on CIFAR-10")
    assert f"nac-hash train --dataset folder --data-root {class_folders} --time-budget 30m" in note
    assert main(train_folder(class_folders, tmp_path / "run", "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(["index", "build", str(class_folders), "--out", str(tmp_path / "b"), "--no-progress",
                 "--checkpoint", str(tmp_path / "run" / "model.safetensors")]) == 0
    assert "note:" not in capsys.readouterr().out  # trained on this very folder
    assert main(["index", "build", str(class_folders), "--out", str(tmp_path / "c"), "--no-progress",
                 "--checkpoint", "copies"]) == 0
    assert "note:" not in capsys.readouterr().out  # the copy model: trained elsewhere, but not for ranking
