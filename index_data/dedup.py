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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nac_hash.atomic import atomic_path, write_json
from nac_hash.codes import hamming_distance
from nac_hash.index_data.store import IndexStore
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


def _components(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of the graph with these edges (union-find), each as sorted ids."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return [sorted(g) for g in groups.values()]


def close_pairs(store: IndexStore, max_distance: int, progress: bool = True) -> list[tuple[int, int]]:
    """Every pair of item ids whose codes lie within ``max_distance``, by radius search of the index."""
    index, _ = store.load_index()
    ids, codes = store.catalog.codes()
    pairs = []
    bar = progress_bar(total=len(ids), desc="dedup", unit="item", disable=not progress)
    for start in range(0, len(ids), QUERY_CHUNK):
        chunk = slice(start, start + QUERY_CHUNK)
        for query_id, (_, found) in zip(ids[chunk], index.range_search(codes[chunk], max_distance), strict=True):
            pairs += [(int(query_id), int(other)) for other in found if other > query_id]
        bar.update(len(ids[chunk]))
    bar.close()
    return pairs


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        return 0, 0


def find_groups(index_dir: str | Path, max_distance: int, progress: bool = True) -> list[list[Member]]:
    """Groups of near-duplicates, largest group first; within a group the one to keep comes first."""
    if max_distance < 0:
        raise ValueError(f"--max-distance must be at least 0, got {max_distance}")
    store = IndexStore(index_dir)
    try:
        groups = _components(close_pairs(store, max_distance, progress))
        members = store.catalog.items({i for g in groups for i in g})
        codes = store.catalog.codes_of({i for g in groups for i in g})
    finally:
        store.close()
    result = []
    for group in groups:
        files = {i: members[i].file for i in group if i in members}
        sizes = {i: _image_size(f) for i, f in files.items()}
        lengths = {i: f.stat().st_size if f.is_file() else 0 for i, f in files.items()}
        order = sorted(files, key=lambda i: (-sizes[i][0] * sizes[i][1], -lengths[i], str(files[i])))
        if len(order) < 2:
            continue
        first = np.frombuffer(codes[order[0]], np.uint8)[None]
        distances = hamming_distance(first, np.stack([np.frombuffer(codes[i], np.uint8) for i in order]))[0]
        result.append([Member(i, str(files[i]), int(d), lengths[i], *sizes[i])
                       for i, d in zip(order, distances, strict=True)])
    return sorted(result, key=lambda g: (-len(g), g[0].path))


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
