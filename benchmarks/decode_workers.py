"""Where a photo's indexing time goes, and whether threads or processes spread its decoding better.

Usage: python benchmarks/decode_workers.py [--images 40] [--repeats 5] [--width 4000] [--height 3000]
       [--out results.json]

Writes the seeded photo-like JPEGs of benchmarks/photo_index.py (4000 x 3000 by default), then times, on one
thread, reading a file, its SHA-256 and `decode_image` to 32 px (ms per photo), and the photos/s of
`read_image` spread over thread pools (1, 2, 4 and 8 threads; the indexer's choice) and fork process pools (2
and 3 workers), each after one untimed pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from photo_index import write_photos

from nac_hash.atomic import write_json
from nac_hash.images import decode_image, read_image
from nac_hash.provenance import provenance


def decode_file(path: Path) -> None:
    read_image(path, 32)


def ms_per_photo(work: Callable[[Path], object], files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        work(path)
    return round(1000 * (time.perf_counter() - start) / len(files), 2)


def photos_per_second(pool: Executor, files: list[Path]) -> float:
    list(pool.map(decode_file, files, chunksize=4))  # untimed: starts the workers
    start = time.perf_counter()
    list(pool.map(decode_file, files, chunksize=4))
    return round(len(files) / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="photos to generate (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="passes over the photos per timing (default: %(default)s)")
    parser.add_argument("--width", type=int, default=4000, help="(default: %(default)s)")
    parser.add_argument("--height", type=int, default=3000, help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, help="results JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_photos(folder, args.images, args.width, args.height)
        files = sorted(folder.glob("*.jpg")) * args.repeats
        contents = {path: path.read_bytes() for path in files}
        stages = {
            "read": ms_per_photo(lambda p: p.read_bytes(), files),
            "sha256": ms_per_photo(lambda p: hashlib.sha256(contents[p]).digest(), files),
            "decode": ms_per_photo(lambda p: decode_image(contents[p], 32), files),
        }
        pools = {}
        for threads in (1, 2, 4, 8):
            with ThreadPoolExecutor(threads) as pool:
                pools[f"threads-{threads}"] = photos_per_second(pool, files)
        for processes in (2, 3):
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
                pools[f"processes-{processes}"] = photos_per_second(pool, files)
        megabytes = round(sum(len(contents[p]) for p in set(files)) / len(set(files)) / 2**20, 2)
    result = {"benchmark": "photo decoding: stages and workers", "photos": args.images, "repeats": args.repeats,
              "size": [args.width, args.height], "mb_per_photo": megabytes, "ms_per_photo_one_thread": stages,
              "photos_per_second": pools, **provenance()}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
