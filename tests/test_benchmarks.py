"""Smoke tests of every benchmark script and command on tiny data: they run and write what they promise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, import_benchmark, write_class_folders

from nac_hash.checkpoint import default_checkpoint
from nac_hash.cli import main


def test_step_profile_times_each_setting(tmp_path):
    out = tmp_path / "steps.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_profile.py"), "--batch-size", "8", "--steps",
                    "1", "--settings", "fp32,bf16-cl+keep+view24", "--out", str(out)], check=True, cwd=tmp_path,
                   capture_output=True)
    results = json.loads(out.read_text())["results"]
    assert [(r["setting"], r["keep_freed_memory"], r["view_size"]) for r in results] == [
        ("fp32", False, 32), ("bf16-cl+keep+view24", True, 24)]
    assert all(r["images_per_s"] > 0 and 0 <= r["augment_share"] <= 1 and r["peak_rss_mb"] > 0 for r in results)


def test_step_profile_in_turns_reports_each_turns_ratio(tmp_path):
    out = tmp_path / "turns.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_profile.py"), "--batch-size", "8", "--steps",
                    "1", "--turns", "3", "--settings", "fp32,bf16-cl+keep", "--out", str(out)], check=True,
                   cwd=tmp_path, capture_output=True)
    result = json.loads(out.read_text())
    rates, ratios = result["images_per_s_each_turn"], result["ratio_to_fp32_each_turn"]["bf16-cl+keep"]
    assert [len(rates["fp32"]), len(rates["bf16-cl+keep"]), len(ratios)] == [3, 3, 3]
    assert ratios == pytest.approx([b / a for a, b in zip(rates["fp32"], rates["bf16-cl+keep"], strict=True)],
                                   rel=1e-2)


def in_history(commit: str) -> bool:
    return subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True).returncode == 0


def test_step_profile_times_the_issue_commits_own_step(tmp_path):
    commit = import_benchmark("step_profile").ISSUE_COMMIT
    if not in_history(commit):
        pytest.skip(f"commit {commit} is not in this clone's history (a shallow clone): the issue-tree step needs it")
    out = tmp_path / "turns.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_profile.py"), "--batch-size", "8", "--steps",
                    "1", "--turns", "2", "--settings", "issue-tree,bf16-cl+keep", "--out", str(out)], check=True,
                   cwd=tmp_path, capture_output=True)
    result = json.loads(out.read_text())
    assert result["commits"] == {"issue-tree": commit}
    assert all(rate > 0 for rates in result["images_per_s_each_turn"].values() for rate in rates)
    assert len(result["ratio_to_issue-tree_each_turn"]["bf16-cl+keep"]) == 2
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_profile.py"), "--settings",
                           "issue-tree,fp32"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "--turns only" in done.stderr.splitlines()[-1]


def test_step_profile_refuses_turns_of_one_setting(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_profile.py"), "--turns", "3",
                           "--settings", "fp32"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_step_profile_refuses_previous_layers_of_another_encoder(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_profile.py"), "--arch", "resnet18",
                           "--settings", "fp32-cl-previous"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "use it with --arch cnn_small" in done.stderr.splitlines()[-1]


def test_bench_index_and_search(index, class_folders, tmp_path):
    index_out, search_out = tmp_path / "index.json", tmp_path / "search.json"
    assert main(["bench", "index", str(class_folders), "--out", str(index_out), "--no-progress"]) == 0
    assert json.loads(index_out.read_text())["images"] == 36
    assert main(["bench", "search", "--codes-from", str(index), "--size", "3000", "--queries", "20", "-k", "5",
                 "--index-types", "flat,multihash", "--out", str(search_out)]) == 0
    types = json.loads(search_out.read_text())["index_types"]
    assert set(types) == {"flat", "multihash"} and types["flat"]["recall_at_k"] == 1.0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
def test_service_load_benchmark(index, class_folders, tmp_path):
    out = tmp_path / "load.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "service" / "load.py"), "--index", str(index),
                    "--image", str(class_folders / "class0" / "0001.png"), "--large", "2000", "--seconds", "1",
                    "--connections", "2", "--port", "8391", "--batching", "on", "--faiss-threads", "all,1",
                    "--out", str(out)], check=True, cwd=REPO, capture_output=True, timeout=300)
    runs = json.loads(out.read_text())["runs"]
    assert [(r["items"], r["faiss_threads"]) for r in runs] == [(36, "all"), (36, "1"), (2000, "all"), (2000, "1")]
    assert all(r["by_image"]["requests_per_second"] > 0 for r in runs)


def test_photo_index_benchmark_compares_both_decoders(tmp_path):
    out = tmp_path / "photos.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "photo_index.py"), "--images", "3", "--width", "400",
                    "--height", "300", "--repeats", "2", "--out", str(out)], check=True, cwd=tmp_path,
                   capture_output=True)
    result = json.loads(out.read_text())
    rates = result["images_per_second"]
    assert set(rates) == {"shipped", "full_decode"}
    assert result["speedup"] == pytest.approx(rates["shipped"] / rates["full_decode"], abs=0.01)
    for path, repeats in result["images_per_second_each_repeat"].items():
        assert min(repeats) <= rates[path] <= max(repeats)  # the median of the repeats
    assert [len(rates) for rates in result["images_per_second_each_repeat"].values()] == [2, 2]
    assert result["mb_per_photo"] > 0
    assert result["code_bits_differing_from_full_decode"]["max"] <= 128


def test_photo_grain_sets_the_file_size(tmp_path):
    write_photos = import_benchmark("photo_index").write_photos
    for grain in (0, 6):
        write_photos(tmp_path / str(grain), 2, 400, 300, grain)
    size = {grain: sum(p.stat().st_size for p in (tmp_path / str(grain)).iterdir()) for grain in (0, 6)}
    assert size[6] > 1.5 * size[0]


def test_decode_workers_benchmark_times_each_stage_and_pool(tmp_path):
    out = tmp_path / "decode.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "decode_workers.py"), "--images", "2", "--repeats", "1",
                    "--width", "400", "--height", "300", "--out", str(out)], check=True, cwd=tmp_path,
                   capture_output=True)
    result = json.loads(out.read_text())
    assert set(result["ms_per_photo_one_thread"]) == {"read", "sha256", "decode"}
    assert set(result["photos_per_second"]) == {"threads-1", "threads-2", "threads-4", "threads-8", "processes-2",
                                                "processes-3"}
    # A pool's rate can never beat every photo's stages done at once, one thread per core being the bound.
    one_photo_s = sum(result["ms_per_photo_one_thread"].values()) / 1000
    assert all(rate > 0 for rate in result["photos_per_second"].values())
    assert max(result["photos_per_second"].values()) <= 4 * (os.cpu_count() or 1) / one_photo_s


def test_view_averaging_scores_each_number_of_views(class_folders, tmp_path):
    out = tmp_path / "views.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "view_averaging.py"), "--dataset", "folder",
                    "--data-root", str(class_folders), "--protocol", "folder", "--out", str(out)],
                   check=True, cwd=tmp_path, capture_output=True)
    rows = json.loads(out.read_text())["rows"]
    assert [r["views"] for r in rows] == [1, 2, 4, 6, 8, 10]
    assert all(0 < r["map_all"] <= 1 for r in rows)


def test_bench_copies_scores_every_method_and_transform(tmp_path):
    from helpers import write_class_folders

    from nac_hash.cli.bench_copies import ALL_TRANSFORMS

    write_class_folders(tmp_path / "originals", classes=2, per_class=8)
    write_class_folders(tmp_path / "distractors", classes=2, per_class=8, seed=3)
    out = tmp_path / "copies"
    assert main(["bench", "copies", "--originals", str(tmp_path / "originals"), "--distractors",
                 str(tmp_path / "distractors"), "--queries", "6", "--methods", "nac,phash,lsh", "--out", str(out)]) == 0
    methods = json.loads((out / "results.json").read_text())["methods"]
    assert set(methods) == {"nac", "phash", "lsh"} and (out / "recall-at-1.png").is_file()
    for scores in methods.values():
        for transform in ALL_TRANSFORMS:
            assert 0 <= scores[transform]["recall@1"] <= scores[transform]["recall@10"] <= 1
            recalls = [p["recall"] for p in scores[transform]["pr"]]
            assert recalls == sorted(recalls)  # a larger threshold never finds fewer originals
    assert methods["phash"]["jpeg"]["recall@1"] >= 0.5  # a re-encoded copy keeps its perceptual hash
    at = methods["nac"]["at_dedup_distance"]  # the packaged retrieval model records no distance: dedup's 4
    assert at["distance"] == 4 and at["recall"] == pytest.approx(
        np.mean([methods["nac"][t]["pr"][4]["recall"] for t in ALL_TRANSFORMS]))
    for scores in methods.values():  # queries made from the distractors, which a model may have trained on
        assert set(scores["seen"]) == {*ALL_TRANSFORMS, "mean_recall@1"}


def test_bench_dedup_scores_every_method_on_one_planted_folder(tmp_path):
    from helpers import write_smooth_images

    from nac_hash.cli.bench_copies import ALL_TRANSFORMS
    from nac_hash.cli.bench_dedup import METHODS

    write_smooth_images(tmp_path / "originals", 20)
    out = tmp_path / "dedup"
    assert main(["bench", "dedup", "--originals", str(tmp_path / "originals"), "--count", "20", "--side", "64",
                 "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    files = sorted(p.name for p in (out / "folder").iterdir())
    assert len(files) == result["files"] == 40 and sum(f.startswith("c-") for f in files) == 20
    assert set(result["methods"]) == set(METHODS) and result["transforms"] == list(ALL_TRANSFORMS)
    for row in result["methods"].values():
        assert row["right_pairs"] <= row["pairs_reported"] and row["recall"] == row["right_pairs"] / 20
        assert row["precision"] == (row["right_pairs"] / row["pairs_reported"] if row["pairs_reported"] else 1.0)
        found = sum(r * 2 for r in row["recall_per_transform"].values())  # two copies per transform
        assert found == pytest.approx(row["right_pairs"])
        assert row["wall_time_s"] > 0
    for method in ("nac-hash", "PHash"):  # resized and re-encoded copies of smooth images: every one found
        recall = result["methods"][method]["recall_per_transform"]
        assert recall["resize"] == recall["jpeg"] == 1.0, method


def test_dedup_scale_benchmark(index, tmp_path):
    out = tmp_path / "dedup.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "dedup_scale.py"), "--codes-from", str(index),
                    "--size", "500", "--out", str(out)], check=True, cwd=tmp_path, capture_output=True)
    result = json.loads(out.read_text())
    # The same 500 codes (the benchmark grows them with a fixed seed) and their pairs within 4 bits, counted by
    # brute force: the benchmark's multi-hash search must find exactly these.
    from nac_hash.cli.bench_index import grow_codes
    from nac_hash.codes import hamming_distance
    from nac_hash.index_data.store import IndexStore

    store = IndexStore(index)
    codes = grow_codes(store.catalog.codes()[1], 500, np.random.default_rng(0))
    store.close()
    distances = hamming_distance(codes, codes)
    pairs = int((np.triu(distances <= result["max_distance"], k=1)).sum())
    assert result["codes"] == 500 and result["pairs"] == pairs > 0 and 0 < result["codes_in_groups"] <= 500


def test_code_readouts_scores_each_readout_beside_pixels(tmp_path):
    folders = write_class_folders(tmp_path / "images", per_class=50)  # ITQ at 128 bits needs 128 training images
    out = tmp_path / "readouts.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "code_readouts.py"), str(default_checkpoint()),
                    "--data-root", str(folders), "--out", str(out)], check=True, cwd=tmp_path, capture_output=True)
    result = json.loads(out.read_text())
    readouts = ("signs", "itq_logits", "itq_features", "itq_unit_features")
    assert all(0 < result["rows"][0][name]["map_all"] <= 1 for name in readouts)
    assert 0 < result["itq_on_pixels"]["map_all"] <= 1


@pytest.mark.slow
def test_budget_sweep_trains_and_scores_every_configuration(tmp_path):
    folders = write_class_folders(tmp_path / "images", per_class=20)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "SWEEP_CONFIGS": "recipe,width-64"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "budget_sweep.sh"), "1s", str(tmp_path / "sweep"),
                           "--dataset", "folder", "--data-root", str(folders), "--device", "cpu",
                           "--jitter-probability", "0"],  # no colour jitter: nothing to compile in each run
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert sorted(r["config"] for r in rows) == ["recipe", "width-64"]
    for row in rows:  # each run changed its one setting, and the table shows each run's own score
        scored = json.loads((tmp_path / "sweep" / f"{row['config']}.json").read_text())
        assert row["map_all"] == round(scored["methods"]["nac"]["map_all"], 4)
        assert row["config"] == "recipe" or row["config"].split("-")[0] in row["command"].replace("_", "-")


def test_bench_dedup_refuses_unknown_edits_and_methods_in_one_line(tmp_path, capsys):
    from helpers import write_smooth_images

    write_smooth_images(tmp_path / "originals", 4)
    for option, value in (("--transforms", "resize,warp"), ("--methods", "nac-hash,md5")):
        assert main(["bench", "dedup", "--originals", str(tmp_path / "originals"), "--count", "4", option, value,
                     "--out", str(tmp_path / "out")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "unknown transforms warp" in errors[0] and "unknown methods md5" in errors[1]
