"""Near-duplicate search at scale: every pair within a radius among 1,000,000 codes, and their groups.

Usage: python benchmarks/dedup_scale.py --codes-from INDEX [--size 1000000] [--max-distance 4] [--out results.json]

The codes are grown from a real index's codes as in `nac-hash bench search` (the real codes, then copies of
random ones with 0 to 3 bits flipped), so they cluster like real codes. Times the part of `nac-hash dedup`
that grows with the collection: the radius search of every code (multi-hash) and the connected components.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nac_hash.atomic import write_json
from nac_hash.cli.bench_index import grow_codes
from nac_hash.index_data.dedup import close_pairs, group_rows
from nac_hash.index_data.store import IndexStore
from nac_hash.provenance import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes-from", type=Path, required=True, help="index whose codes seed the collection")
    parser.add_argument("--size", type=int, default=1_000_000, help="(default: %(default)s)")
    parser.add_argument("--max-distance", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, help="results JSON")
    args = parser.parse_args()
    store = IndexStore(args.codes_from)
    _, seed_codes = store.catalog.codes()
    store.close()
    codes = grow_codes(seed_codes, args.size, np.random.default_rng(0))
    started = time.perf_counter()
    firsts, seconds = close_pairs(codes, args.max_distance, progress=False)
    searched = time.perf_counter()
    groups = group_rows(len(codes), firsts, seconds)
    finished = time.perf_counter()
    result = {"benchmark": "dedup at scale", "codes": len(codes), "max_distance": args.max_distance,
              "pairs": len(firsts), "groups": len(groups), "codes_in_groups": int(sum(len(g) for g in groups)),
              "search_seconds": round(searched - started, 1), "grouping_seconds": round(finished - searched, 1),
              "total_seconds": round(finished - started, 1), **provenance()}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
