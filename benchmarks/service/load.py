"""p50/p99 latency and requests/s of POST /search, by image and by code, at 60,000 and 1,000,000 items, with the
service's query batching off and on, FAISS on all cores or on one thread per search, and the start-up objects
frozen out of the garbage collector or not.

Starts `nac-hash serve` (one uvicorn worker) on each index and drives it with wrk on the same machine, so the
server and the load generator share the CPU. The 1,000,000-item index is the 60,000 CIFAR-10 codes plus
copies with 0 to 3 bits flipped (see nac_hash/cli/bench_index.py), with synthetic metadata rows.

    python benchmarks/service/load.py --index runs/cifar-index --image data/CIFAR-10-images/test/cat/0001.jpg \
        --out benchmarks/results/service-load/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from nac_hash.atomic import write_json
from nac_hash.cli.bench_index import grow_codes, synthetic_index
from nac_hash.index_data.store import IndexStore
from nac_hash.provenance import provenance

SCRIPT = Path(__file__).with_name("search.lua")
SWITCH = {"both": (False, True), "on": (True,), "off": (False,)}  # the settings each choice runs in turn


def service_env(batching: bool, threads: str, gc_freeze: bool) -> dict[str, str]:
    """The service settings of one case; threads "all" leaves FAISS its default (every core)."""
    env = {"NAC_HASH_BATCH_QUERIES": str(batching).lower(), "NAC_HASH_GC_FREEZE": str(gc_freeze).lower()}
    return env if threads == "all" else env | {"NAC_HASH_THREADS": threads}


def serve(index: Path, port: int, settings: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "NAC_HASH_THREADS"} | settings
    server = subprocess.Popen([sys.executable, "-m", "nac_hash.cli", "serve", "--index", str(index), "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"the service on {index} did not become ready")


def wrk(port: int, env: dict, seconds: int, connections: int) -> dict:
    output = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(SCRIPT),
                             f"http://127.0.0.1:{port}/search"], env={**os.environ, **env}, capture_output=True,
                            text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["requests_per_second"] = round(result["requests"] / result["seconds"], 1)
    return result


def run(index: Path, image: Path, code: str, port: int, seconds: int, connections: int, batching: bool,
        threads: str, gc_freeze: bool) -> dict:
    server = serve(index, port, service_env(batching, threads, gc_freeze))
    try:
        items = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").read())["items"]
        return {"items": items, "batch_queries": batching, "faiss_threads": threads, "gc_freeze": gc_freeze,
                "by_image": wrk(port, {"IMAGE": str(image)}, seconds, connections),
                "by_code": wrk(port, {"CODE": code}, seconds, connections)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="a real index (its codes seed the 1M one)")
    parser.add_argument("--image", type=Path, required=True, help="query image")
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--port", type=int, default=8390)
    parser.add_argument("--batching", choices=SWITCH, default="both",
                        help="query batching of the service (NAC_HASH_BATCH_QUERIES): each setting in turn (default)")
    parser.add_argument("--gc-freeze", choices=SWITCH, default="on",
                        help="start-up objects out of the garbage collector (NAC_HASH_GC_FREEZE; default: on)")
    parser.add_argument("--faiss-threads", default="all",
                        help="comma-separated FAISS thread settings to run in turn: all (every core) or a number")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    store = IndexStore(args.index)
    _, codes = store.catalog.codes()
    meta = dict(store.meta)
    store.close()
    code = codes[len(codes) // 2].tobytes().hex()
    cases = [(b, t, g) for b in SWITCH[args.batching] for t in args.faiss_threads.split(",")
             for g in SWITCH[args.gc_freeze]]
    results = [run(args.index, args.image, code, args.port, args.seconds, args.connections, *case) for case in cases]
    with tempfile.TemporaryDirectory() as scratch:
        synthetic_index(Path(scratch), grow_codes(codes, args.large, np.random.default_rng(0)), meta)
        results += [run(Path(scratch), args.image, code, args.port, args.seconds, args.connections, *case)
                    for case in cases]
    write_json(args.out, {"benchmark": "service /search", "k": 10, "uvicorn_workers": 1,
                          "wrk": {"threads": 1, "connections": args.connections, "seconds": args.seconds},
                          "runs": results, **provenance()})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
