"""`nac-hash index build` on photo-size JPEGs: today's decoder against the full-decode path it replaced.

Usage: python benchmarks/photo_index.py [--images 200] [--width 4000] [--height 3000] [--grain 6]
       [--repeats 3] [--out results.json]

Generates seeded, smooth, photo-like JPEGs (a few random colours interpolated bicubically over the frame, plus
row-wise grain of up to +-``--grain`` levels; quality 90), then builds an index of them twice in the same run:
with the shipped decoder (JPEG draft mode, the centred square resized straight to 32 px, threads over both
cores) and with the previous path (full decode, shorter side resized, then the centre crop). Prints and writes
images/s of both (the median of ``--repeats`` builds each), and checks that both paths give nearly the same codes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

from nac_hash.atomic import write_json
from nac_hash.cli.bench_index import bench_index
from nac_hash.index_data.catalog import Catalog
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.indexer import build
from nac_hash.provenance import provenance

DEFAULT_GRAIN = 6


def write_photos(folder: Path, count: int, width: int, height: int, grain: int = DEFAULT_GRAIN,
                 seed: int = 0) -> None:
    """Photo-like JPEGs. ``grain`` sets how much detail the JPEG must code, so the file size: with 4000 x 3000
    pixels, 0.83 MB per photo at 1, 1.71 MB at 6 (photo-index-grain1.json, -grain6.json). A JPEG's entropy
    decoding, the one stage draft mode cannot shrink, grows with the file size; the full decode is dominated by
    the pixel count."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        pixels = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
        rows = rng.integers(-grain, grain + 1, (height, 1, 1), dtype=np.int16)  # cheap, not white noise
        Image.fromarray(np.clip(pixels + rows, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)


def full_decode(data: bytes, size: int, max_pixels: int, max_bytes: int) -> np.ndarray:
    """The decoder before draft mode: decode every pixel, resize the shorter side to ``size``, crop the centre."""
    import io

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        width, height = image.size
        scale = size / min(width, height)
        resized = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(resized, Image.Resampling.BILINEAR)
        left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def codes_by_path(index_dir: Path) -> dict[str, bytes]:
    _, codes, files, _ = Catalog(index_dir / "catalog.sqlite").index_rows()
    return {Path(f).name: c.tobytes() for f, c in zip(files, codes, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="photos to generate (default: %(default)s)")
    parser.add_argument("--width", type=int, default=4000, help="(default: %(default)s)")
    parser.add_argument("--height", type=int, default=3000, help="(default: %(default)s)")
    parser.add_argument("--grain", type=int, default=DEFAULT_GRAIN,
                        help="row-wise grain in levels; sets the file size (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed builds of each path; the median counts (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="results JSON")
    args = parser.parse_args()
    options = IndexOptions(progress=False)
    with tempfile.TemporaryDirectory() as scratch:
        photos = Path(scratch) / "photos"
        write_photos(photos, args.images, args.width, args.height, args.grain)
        mb_per_photo = sum(p.stat().st_size for p in photos.iterdir()) / args.images / 1e6
        # The two builds that give the codes to compare also warm up the model and the thread pools.
        build([photos], Path(scratch) / "a", options)
        with mock.patch("nac_hash.index_data.indexer.decode_image", full_decode):
            build([photos], Path(scratch) / "b", options)
        a, b = codes_by_path(Path(scratch) / "a"), codes_by_path(Path(scratch) / "b")
        rates: dict[str, list[float]] = {"shipped": [], "full_decode": []}
        for _ in range(args.repeats):  # alternating, so that a slow spell of the machine hits both paths
            rates["shipped"].append(bench_index([photos], options)["images_per_second"])
            with mock.patch("nac_hash.index_data.indexer.decode_image", full_decode):
                rates["full_decode"].append(bench_index([photos], options)["images_per_second"])
    median = {path: statistics.median(each) for path, each in rates.items()}
    differing_bits = [int(np.unpackbits(np.frombuffer(a[k], np.uint8) ^ np.frombuffer(b[k], np.uint8)).sum())
                      for k in a]
    result = {
        "benchmark": "index build of photo-size JPEGs", "images": args.images, "size": [args.width, args.height],
        "grain": args.grain, "mb_per_photo": round(mb_per_photo, 2),
        "images_per_second": median, "images_per_second_each_repeat": rates,
        "speedup": round(median["shipped"] / median["full_decode"], 2),
        "code_bits_differing_from_full_decode": {"mean": float(np.mean(differing_bits)),
                                                 "max": int(np.max(differing_bits))},
        "workers": options.workers, **provenance(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
