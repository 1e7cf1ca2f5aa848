"""``nac-hash serve``: the HTTP search service."""

from __future__ import annotations

import argparse
from pathlib import Path


def _serve(args: argparse.Namespace) -> None:
    from nac_hash.service.server import serve
    from nac_hash.service.settings import Settings

    overrides = {"index": args.index, "checkpoint": args.checkpoint, "threads": args.threads,
                 "mmap": args.mmap or None, "host": args.host, "port": args.port,
                 "allow_open_writes": args.allow_open_writes or None}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    serve(settings)


def add_serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--index", type=Path, help="index directory (default: $NAC_HASH_INDEX)")
    serve.add_argument("--checkpoint", type=Path, help="(default: the index's own model)")
    serve.add_argument("--host", help="address to bind (default: $NAC_HASH_HOST or 127.0.0.1); beyond loopback, "
                       "writes need NAC_HASH_API_KEY or --allow-open-writes")
    serve.add_argument("--port", type=int, help="(default: $NAC_HASH_PORT or 8000)")
    serve.add_argument("--allow-open-writes", action="store_true",
                       help="let anyone add and delete items when no API key is set, on any address")
    serve.add_argument("--threads", type=int, help="FAISS search threads")
    serve.add_argument("--mmap", action="store_true", help="memory-map a flat index read-only")
    serve.set_defaults(run=_serve)


CONFIGURE = {"serve": add_serve}
