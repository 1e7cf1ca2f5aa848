"""`nac-hash bench map` end to end on a generated MIRFLICKR-25K folder (multi-label relevance)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nac_hash.cli import main
from nac_hash.training.datasets import FLICKR25K_CONCEPTS

CONCEPTS = ("sky", "sea", "tree")


def write_mirflickr(root: Path, images: int = 7200, seed: int = 0) -> None:
    """im1.jpg .. imN.jpg whose colour channels show which of three concepts they are tagged with."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tags = rng.random((images, len(CONCEPTS))) < 0.4
    for i in range(images):
        pixels = np.clip(rng.normal(40, 20, (8, 8, 3)) + 180 * tags[i], 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"im{i + 1}.jpg", quality=90)
    (root / "annotations").mkdir()
    for concept in FLICKR25K_CONCEPTS:
        column = CONCEPTS.index(concept) if concept in CONCEPTS else None
        numbers = np.flatnonzero(tags[:, column]) + 1 if column is not None else []
        (root / "annotations" / f"{concept}.txt").write_text("".join(f"{n}\n" for n in numbers))


@pytest.mark.slow
def test_bench_map_on_mirflickr_layout(tmp_path, capsys):
    write_mirflickr(tmp_path / "mirflickr")
    out = tmp_path / "bench"
    assert main(["bench", "map", "--dataset", "flickr25k", "--root", str(tmp_path / "mirflickr"), "--bits", "32",
                 "--methods", "lsh,itq,phash", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "flickr25k" and results["dataset"] == "MIRFLICKR-25K"
    assert [(r["method"], r["bits"]) for r in results["rows"]] == [("lsh", 32), ("itq", 32), ("phash", 64)]
    for row in results["rows"]:
        assert abs(row["cross_check"]["ours"] - row["cross_check"]["sklearn"]) < 1e-9
        assert row["method"] in printed
    # Colour carries the tags, so pixel methods beat chance (the share of pairs that share a tag) widely.
    chance = 1 - (1 - 0.4**2) ** len(CONCEPTS)
    for row in results["rows"][:2]:
        assert row["map_all"] > chance + 0.15, (row["method"], row["map_all"], chance)
    assert {p.name for p in out.iterdir()} >= {"results.json", "split.npz", "pr-curves.png", "retrieval-grid.png"}
