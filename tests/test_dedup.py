"""nac-hash dedup: planted copies in a generated folder are found, moves can be undone, errors are one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from nac_hash.cli import main


def write_with_copies(root: Path, originals: int = 12, seed: int = 0) -> dict[str, set[str]]:
    """Distinct smooth images, a third of them with a resized and a re-encoded copy; returns original -> copies."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    planted = {}
    for i in range(originals):
        coarse = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8))
        image = coarse.resize((96, 96), Image.Resampling.BICUBIC)
        image.save(root / f"{i:02d}.png")
        if i % 3 == 0:
            image.resize((64, 64), Image.Resampling.BILINEAR).save(root / f"{i:02d}-small.png")
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=70)
            (root / f"{i:02d}-jpeg.jpg").write_bytes(buffer.getvalue())
            planted[f"{i:02d}.png"] = {f"{i:02d}-small.png", f"{i:02d}-jpeg.jpg"}
    return planted


def test_planted_copies_are_grouped_and_moves_undo(tmp_path, capsys):
    root = tmp_path / "photos"
    planted = write_with_copies(root)
    out = tmp_path / "report"
    assert main(["dedup", str(root), "--out", str(out), "--plot", "--move-to", str(tmp_path / "extras")]) == 0
    groups = json.loads((out / "groups.json").read_text())["groups"]
    found = {frozenset(Path(m["path"]).name for m in g) for g in groups}
    expected = {frozenset({original, *copies}) for original, copies in planted.items()}
    recall = len(found & expected) / len(expected)
    precision = len(found & expected) / len(found)
    assert recall >= 0.75 and precision >= 0.75, (found, expected)
    for group in groups:  # the one kept is the largest image
        assert group[0]["width"] * group[0]["height"] == max(m["width"] * m["height"] for m in group)
        assert group[0]["distance"] == 0
    rows = list(csv.DictReader((out / "groups.csv").open()))
    assert len(rows) == sum(len(g) for g in groups) and (out / "groups.png").is_file()

    removable = (out / "removable.txt").read_text().split()
    before = sorted(p.name for p in root.iterdir())
    assert all(not Path(p).exists() for p in removable)  # moved, not deleted
    assert len(list((tmp_path / "extras").rglob("*.*"))) == len(removable)
    assert main(["dedup", "--undo", str(out / "moves.jsonl")]) == 0
    assert sorted(p.name for p in root.iterdir()) == sorted(before + [Path(p).name for p in removable])


def test_dedup_errors_are_one_line(tmp_path, capsys):
    assert main(["dedup", str(tmp_path / "nowhere")]) == 2
    assert main(["dedup", str(tmp_path), "--max-distance", "-1"]) == 2
    assert main(["dedup"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("nac-hash dedup: error:") for e in errors)


def test_close_pairs_are_exactly_the_brute_force_pairs():
    from nac_hash.codes import hamming_distance
    from nac_hash.index_data.dedup import close_pairs, group_rows

    rng = np.random.default_rng(0)
    codes = np.packbits(rng.integers(0, 2, (300, 128)).astype(np.uint8), axis=1)
    codes[100:110] = codes[0]  # 11 identical codes
    codes[201] = codes[200] ^ np.eye(16, dtype=np.uint8)[0] * 0b111  # 3 bits from 200
    codes[202] = codes[201] ^ np.eye(16, dtype=np.uint8)[5] * 0b1111  # 4 bits from 201, 7 from 200
    distances = hamming_distance(codes, codes)
    for radius in (3, 7, 9):  # multi-hash up to 7, the flat scan beyond
        firsts, seconds = close_pairs(codes, radius, progress=False)
        expected = {(i, j) for i in range(300) for j in range(i + 1, 300) if distances[i, j] <= radius}
        assert set(zip(firsts.tolist(), seconds.tolist(), strict=True)) == expected
    assert sorted(len(g) for g in group_rows(300, *close_pairs(codes, 3, progress=False))) == [2, 11]


def write_mirrored(root: Path) -> set[frozenset[str]]:
    """Ten smooth images, five of them with a mirrored copy (it changes the retrieval model's codes and every
    ImageHash hash); returns the pairs."""
    from helpers import write_smooth_images

    write_smooth_images(root, 10)
    for i in range(0, 10, 2):
        ImageOps.mirror(Image.open(root / f"{i:04d}.png")).save(root / f"{i:04d}-mirror.png")
    return {frozenset({f"{i:04d}.png", f"{i:04d}-mirror.png"}) for i in range(0, 10, 2)}


def found_groups(report: Path) -> set[frozenset[str]]:
    groups = json.loads((report / "groups.json").read_text())["groups"]
    return {frozenset(Path(m["path"]).name for m in g) for g in groups}


def test_a_folder_is_deduplicated_with_the_copy_model_at_its_own_distance(tmp_path, capsys):
    from nac_hash.checkpoint import copy_checkpoint, read_sidecar

    pairs = write_mirrored(tmp_path / "photos")
    assert main(["dedup", str(tmp_path / "photos"), "--out", str(tmp_path / "report")]) == 0
    distance = read_sidecar(copy_checkpoint())["dedup_distance"]
    assert f"within distance {distance}" in capsys.readouterr().out
    assert found_groups(tmp_path / "report") == pairs
    # A model named for a folder is the one used: the retrieval model at its distance misses mirrored copies.
    assert main(["dedup", str(tmp_path / "photos"), "--checkpoint", "default", "--out", str(tmp_path / "own")]) == 0
    assert "within distance 4" in capsys.readouterr().out
    assert found_groups(tmp_path / "own") != pairs


def test_an_index_of_the_retrieval_model_is_deduplicated_by_its_copy_codes(tmp_path, capsys):
    from nac_hash.checkpoint import copy_checkpoint, read_sidecar

    pairs = write_mirrored(tmp_path / "photos")
    half = tmp_path / "half"  # added later: copy codes come with every add, not only with the build
    half.mkdir()
    for name in ("0006.png", "0006-mirror.png", "0008.png", "0008-mirror.png"):
        (tmp_path / "photos" / name).rename(half / name)
    assert main(["index", "build", str(tmp_path / "photos"), "--out", str(tmp_path / "photos.idx")]) == 0
    assert main(["index", "add", str(tmp_path / "photos.idx"), str(half)]) == 0
    capsys.readouterr()
    assert main(["index", "info", str(tmp_path / "photos.idx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["copy_codes"] and info["dedup_distance"] == read_sidecar(copy_checkpoint())["dedup_distance"]
    assert main(["dedup", str(tmp_path / "photos.idx"), "--out", str(tmp_path / "report")]) == 0
    assert found_groups(tmp_path / "report") == pairs

    # Without copy codes, the retrieval model's own codes at its distance miss mirrored copies.
    assert main(["index", "build", str(tmp_path / "photos"), str(half), "--no-copy-codes",
                 "--out", str(tmp_path / "own.idx")]) == 0
    assert main(["dedup", str(tmp_path / "own.idx"), "--out", str(tmp_path / "own")]) == 0
    assert "within distance 4" in capsys.readouterr().out
    assert found_groups(tmp_path / "own") != pairs
