"""``nac-hash bench dedup``: ``nac-hash dedup`` against imagededup's perceptual hashes, end to end on one folder.

The folder is planted: ``count`` originals drawn from a folder of images, each enlarged to ``side`` pixels (a
photo's size, not a thumbnail's) and saved as a JPEG, and one copy of each, made by one of ``bench copies``'
transforms in turn (resize, JPEG, colour, grayscale, blur, text, flip, rotate, crop, a chain of three) and saved
as a JPEG too. Each method sees only the folder and reports pairs of copies at its default distance; a pair
is right when it joins an original and its copy. Precision: right pairs among those reported; recall: copies
whose pair was reported. Wall time: from the folder to the pairs, in this process (imports done first).
Methods: ``nac-hash dedup`` with its defaults (the packaged copy model), and imagededup's PHash, DHash and
WHash ``find_duplicates`` with theirs.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from nac_hash.atomic import write_json
from nac_hash.cli.bench_copies import ALL_TRANSFORMS
from nac_hash.images import list_images
from nac_hash.progress import progress_bar
from nac_hash.provenance import portable, provenance

logger = logging.getLogger(__name__)

IMAGEDEDUP_METHODS = ("PHash", "DHash", "WHash")
METHODS = ("nac-hash", *IMAGEDEDUP_METHODS)
JPEG_QUALITY = 90
Pair = frozenset[str]


def plant_copies(originals: list[Path], folder: Path, count: int, side: int, seed: int,
                 transforms: tuple[str, ...] = tuple(ALL_TRANSFORMS)) -> dict[str, str]:
    """Write ``count`` originals resized to ``side`` pixels and one copy of each, made by ``transforms`` in turn,
    into ``folder``; return {copy name: transform}. An original is ``o-NNNNN.jpg``; its copy
    ``c-NNNNN-TRANSFORM.jpg``."""
    unknown = sorted(set(transforms) - set(ALL_TRANSFORMS))
    if unknown:
        raise ValueError(f"unknown transforms {', '.join(unknown)}; choose from {', '.join(ALL_TRANSFORMS)}")
    if len(originals) < count:
        raise ValueError(f"{len(originals)} originals found, fewer than --count {count}")
    folder.mkdir(parents=True, exist_ok=True)
    chosen = np.random.default_rng(seed).choice(len(originals), count, replace=False)
    planted = {}
    for i, position in enumerate(progress_bar(chosen, desc="plant", unit="img")):
        with Image.open(originals[position]) as image:
            original = image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        original.save(folder / f"o-{i:05d}.jpg", quality=JPEG_QUALITY)
        name = transforms[i % len(transforms)]
        copy = ALL_TRANSFORMS[name](original, np.random.default_rng([seed, i]))
        copy.convert("RGB").save(folder / f"c-{i:05d}-{name}.jpg", quality=JPEG_QUALITY)
        planted[f"c-{i:05d}-{name}.jpg"] = name
    return planted


def _nac_hash_pairs(folder: Path) -> set[Pair]:
    from nac_hash.index_data.dedup import duplicates_of

    groups, _ = duplicates_of(folder, progress=False)
    return {frozenset((a.path, b.path)) for group in groups for a, b in itertools.combinations(group, 2)}


def _imagededup_pairs(method: str) -> Callable[[Path], set[Pair]]:
    def pairs(folder: Path) -> set[Pair]:
        import imagededup.methods

        found = getattr(imagededup.methods, method)(verbose=False).find_duplicates(image_dir=folder)
        return {frozenset((str(folder / a), str(folder / b))) for a, dups in found.items() for b in dups}

    return pairs


def _score(pairs: set[Pair], planted: dict[str, str]) -> dict:
    """Precision, recall and recall per transform of the reported ``pairs``."""
    names = {frozenset(Path(p).name for p in pair) for pair in pairs}
    truth = {copy: frozenset((f"o-{copy[2:7]}.jpg", copy)) for copy in planted}
    found = {copy for copy, pair in truth.items() if pair in names}
    per_transform = {t: float(np.mean([c in found for c, name in planted.items() if name == t]))
                     for t in ALL_TRANSFORMS if t in planted.values()}
    return {"pairs_reported": len(pairs), "right_pairs": len(found),
            "precision": len(found) / len(pairs) if pairs else 1.0, "recall": len(found) / len(planted),
            "recall_per_transform": per_transform}


def bench_dedup(out_dir: str | Path, originals: str | Path = "data/CIFAR-10-images/test", count: int = 2000,
                side: int = 256, methods: tuple[str, ...] = METHODS, seed: int = 0,
                transforms: tuple[str, ...] | None = None) -> dict:
    """Plant copies in ``out_dir``/folder (made by ``transforms`` in turn, default every edit of bench copies),
    run every method on it, write ``out_dir``/results.json."""
    transforms = transforms or tuple(ALL_TRANSFORMS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {', '.join(unknown)}; choose from {', '.join(METHODS)} (--methods)")
    out_dir = Path(out_dir)
    folder = out_dir / "folder"
    planted = plant_copies(list_images(Path(originals)), folder, count, side, seed, transforms)
    runners = {"nac-hash": _nac_hash_pairs, **{m: _imagededup_pairs(m) for m in IMAGEDEDUP_METHODS}}
    if any(m in IMAGEDEDUP_METHODS for m in methods):
        import imagededup.methods  # noqa: F401  imported before the clock starts, like nac_hash's own modules
    results = {}
    for method in methods:
        started = time.perf_counter()
        pairs = runners[method](folder)
        results[method] = {**_score(pairs, planted), "wall_time_s": round(time.perf_counter() - started, 2)}
        logger.info("%s: precision %.3f recall %.3f in %.1f s", method, results[method]["precision"],
                    results[method]["recall"], results[method]["wall_time_s"])
    summary = {"benchmark": "dedup end to end", "originals": portable(originals), "count": count, "side": side,
               "transforms": list(transforms), "seed": seed, "files": 2 * count, "methods": results,
               **provenance()}
    write_json(out_dir / "results.json", summary)
    return summary
