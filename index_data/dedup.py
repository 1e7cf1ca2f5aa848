"""Near-duplicate groups of an index: every pair of items within a Hamming radius, joined into groups.

Each group lists its members with the Hamming distance to the group's first member, which is the one to keep
(the largest image, then the largest file, then the first path). Nothing is ever deleted: :func:`move_extras`
moves the other members into a folder, one file at a time with an atomic rename where it can, and appends
each move to a manifest as it happens, so that :func:`undo_moves` can put everything back even after an
interrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from nac_hash.atomic import atomic_path, write_json
from nac_hash.checkpoint import checkpoint_paths, copy_checkpoint
from nac_hash.codes import hamming_distance
from nac_hash.images import exif_orientation, upright
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.index import HammingIndex, multihash_exact_radius
from nac_hash.index_data.indexer import build
from nac_hash.index_data.search_params import SearchParams
from nac_hash.index_data.store import CATALOG_NAME, IndexStore
from nac_hash.progress import progress_bar

QUERY_CHUNK = 4096


@dataclass(frozen=True)
class Member:
    id: int
    path: str
    distance: int  # to the group's first member
    file_size: int
    width: int
    height: int


def close_pairs(codes: np.ndarray, max_distance: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of rows of ``codes`` within Hamming distance ``max_distance``, as two arrays.

    Searches a multi-hash index built for the purpose, which finds every pair within its exact radius (7 for
    128 bits) without scanning all codes, or a flat index beyond that radius.
    """
    bits = codes.shape[1] * 8
    index_type = "multihash" if max_distance <= multihash_exact_radius(bits, SearchParams().nflip) else "flat"
    # Held in a variable: it keeps FAISS's index alive while the loop below reads it.
    hamming = HammingIndex.build(codes, np.arange(len(codes), dtype=np.int64), index_type, bits)
    firsts, seconds = [], []
    bar = progress_bar(total=len(codes), desc="dedup", unit="code", disable=not progress)
    for start in range(0, len(codes), QUERY_CHUNK):
        chunk = codes[start : start + QUERY_CHUNK]
        limits, _, positions = hamming.index.range_search(chunk, max_distance + 1)  # FAISS: distances < radius
        queries = np.repeat(np.arange(start, start + len(chunk)), np.diff(limits).astype(np.int64))
        later = positions > queries
        firsts.append(queries[later])
        seconds.append(positions[later])
        bar.update(len(chunk))
    bar.close()
    return np.concatenate(firsts), np.concatenate(seconds)


def group_rows(n: int, firsts: np.ndarray, seconds: np.ndarray) -> list[np.ndarray]:
    """Connected components of the pairs among ``n`` rows (scipy's csgraph), those of two rows or more."""
    graph = coo_matrix((np.ones(len(firsts), np.int8), (firsts, seconds)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return [g for g in np.split(order, bounds) if len(g) > 1]


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return 0, 0


def duplicates_of(path: str | Path, max_distance: int | None = None, checkpoint: str | None = None,
                  progress: bool = True) -> tuple[list[list[Member]], int]:
    """(groups, distance used) for an index directory, or for a folder of images, which is indexed first into
    scratch space with ``checkpoint`` (default: the packaged copy model). ``max_distance`` None takes the
    distance the model of the index's copy codes records (IndexStore.dedup_distance)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a folder of images nor an index directory")
    with tempfile.TemporaryDirectory() as scratch:
        index_dir = path
        if not (path / CATALOG_NAME).is_file():
            index_dir = Path(scratch) / "index"
            model = checkpoint_paths(checkpoint)[0] if checkpoint else copy_checkpoint()
            # The scratch index holds the chosen model's codes only: those are the ones asked for.
            build([path], index_dir, IndexOptions(checkpoint=str(model), progress=progress, copy_codes=False))
        if max_distance is None:
            store = IndexStore(index_dir)
            max_distance = store.dedup_distance
            store.close()
        return find_groups(index_dir, max_distance, progress), max_distance


def find_groups(index_dir: str | Path, max_distance: int, progress: bool = True) -> list[list[Member]]:
    """Groups of near-duplicates by the index's copy codes (IndexStore.copies), largest group first; within a
    group the one to keep comes first."""
    if max_distance < 0:
        raise ValueError(f"--max-distance must be at least 0, got {max_distance}")
    store = IndexStore(index_dir)
    try:
        ids, codes = store.catalog.codes(copy=store.copies.stored)
        groups = group_rows(len(ids), *close_pairs(codes, max_distance, progress))
        members = store.catalog.items(ids[np.concatenate(groups)].tolist() if groups else [])
    finally:
        store.close()
    result = [_members(group, ids, codes, members) for group in groups]
    return sorted((g for g in result if len(g) > 1), key=lambda g: (-len(g), g[0].path))


def _members(rows: np.ndarray, ids: np.ndarray, codes: np.ndarray, items: dict) -> list[Member]:
    """A group's members, the one to keep first (largest image, then largest file, then first path)."""
    files = {int(r): items[int(ids[r])].file for r in rows if int(ids[r]) in items}
    sizes = {r: _image_size(f) for r, f in files.items()}
    lengths = {r: f.stat().st_size if f.is_file() else 0 for r, f in files.items()}
    order = sorted(files, key=lambda r: (-sizes[r][0] * sizes[r][1], -lengths[r], str(files[r])))
    distances = hamming_distance(codes[order[:1]], codes[order])[0] if order else []
    return [Member(int(ids[r]), str(files[r]), int(d), lengths[r], *sizes[r])
            for r, d in zip(order, distances, strict=True)]


def write_report(groups: list[list[Member]], out_dir: str | Path, max_distance: int) -> dict[str, Path]:
    """``groups.json``, ``groups.csv`` and ``removable.txt`` (every member but the first) in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "groups.json", "csv": out_dir / "groups.csv", "removable": out_dir / "removable.txt"}
    write_json(paths["json"], {"max_distance": max_distance, "groups": [[asdict(m) for m in g] for g in groups]})
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "path", "distance", "file_size", "width", "height", "keep"])
        for number, group in enumerate(groups, 1):
            for rank, m in enumerate(group):
                writer.writerow([number, m.path, m.distance, m.file_size, m.width, m.height, rank == 0])
    with atomic_path(paths["removable"]) as tmp:
        tmp.write_text("".join(f"{m.path}\n" for g in groups for m in g[1:]))
    return paths


def contact_sheet(groups: list[list[Member]], path: str | Path, max_groups: int = 12, max_members: int = 8,
                  tile: int = 96) -> None:
    """A PNG with one row per group (the largest groups), the image to keep first."""
    rows = groups[:max_groups]
    sheet = Image.new("RGB", (max_members * (tile + 4), max(1, len(rows)) * (tile + 4)), "white")
    for r, group in enumerate(rows):
        for c, member in enumerate(group[:max_members]):
            try:
                with Image.open(member.path) as image:
                    image.draft("RGB", (tile, tile))
                    thumbnail = image.convert("RGB")
                    thumbnail.thumbnail((tile, tile))
                    thumbnail = upright(thumbnail, exif_orientation(image))
            except (OSError, ValueError):
                continue
            sheet.paste(thumbnail, (c * (tile + 4) + 2, r * (tile + 4) + 2))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(f"{target} exists already; not overwriting it")
    try:
        os.rename(source, target)  # atomic on one file system
    except OSError:
        shutil.move(source, target)  # across file systems: copy, then remove the source


def move_extras(groups: list[list[Member]], move_to: str | Path, manifest: str | Path) -> int:
    """Move every member but each group's first into ``move_to`` (keeping a path below it that names the source
    folder); each move is appended to ``manifest`` (JSON lines, flushed to disk) as soon as it is done."""
    move_to, moved = Path(move_to), 0
    with open(manifest, "a") as log:
        for group in groups:
            for member in group[1:]:
                source = Path(member.path)
                target = move_to / source.relative_to(source.anchor)
                _move(source, target)
                log.write(json.dumps({"from": str(source), "to": str(target)}) + "\n")
                log.flush()
                os.fsync(log.fileno())
                moved += 1
    return moved


def undo_moves(manifest: str | Path) -> int:
    """Move every file a manifest records back where it came from (last move first)."""
    entries = [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]
    for entry in reversed(entries):
        _move(Path(entry["to"]), Path(entry["from"]))
    Path(manifest).rename(Path(manifest).with_suffix(".undone"))
    return len(entries)
