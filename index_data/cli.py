"""``nac-hash index build|add|remove|rebuild|info`` and ``nac-hash search``.

Parsers import nothing heavy; each command imports the indexer or the search API when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from nac_hash.index_data.config import DEFAULT_DEDUP_DISTANCE, IndexOptions
from nac_hash.index_data.search_params import SearchParams
from nac_hash.options import add_dataclass_arguments, set_fields

if TYPE_CHECKING:
    from nac_hash.index_data.indexer import Report


def _options(args: argparse.Namespace) -> IndexOptions:
    return IndexOptions(**set_fields(IndexOptions, args))


def _print_report(report: Report, index_dir: Path) -> None:
    print(report.summary())
    if report.skipped:
        print(f"skipped files and reasons: {index_dir / 'report.json'}")


def _build(args: argparse.Namespace) -> None:
    from nac_hash.index_data.indexer import build

    _print_report(build(args.images, args.out, _options(args)), args.out)


def _add(args: argparse.Namespace) -> None:
    from nac_hash.index_data.indexer import add

    _print_report(add(args.images, args.index, _options(args)), args.index)


def _remove(args: argparse.Namespace) -> None:
    from nac_hash.index_data.indexer import remove

    if not args.ids and not args.paths:
        raise ValueError("give item ids (--id) or file paths (--path) to remove")
    _print_report(remove(args.index, ids=args.ids, paths=args.paths), args.index)


def _merge(args: argparse.Namespace) -> None:
    from nac_hash.index_data.indexer import merge

    _print_report(merge(args.shards, args.out, args.index_type), args.out)


def _rebuild(args: argparse.Namespace) -> None:
    from nac_hash.index_data.indexer import rebuild

    report = rebuild(args.index, args.index_type)
    print(f"rebuilt {report.total} codes in {report.seconds:.1f} s")


def _info(args: argparse.Namespace) -> None:
    from nac_hash.index_data.indexer import info

    print(json.dumps(info(args.index), indent=2))


def _search(args: argparse.Namespace) -> None:
    from nac_hash.images import read_file
    from nac_hash.index_data.search import Searcher

    searcher = Searcher.open(args.index, args.checkpoint, mmap=args.mmap, threads=args.threads,
                             params=SearchParams(**set_fields(SearchParams, args)))
    codes, logits = searcher.query_bytes([read_file(Path(image)) for image in args.images])
    if args.radius is not None:
        results = searcher.radius_search(codes, args.radius, logits)
    else:
        results = searcher.search(codes, args.k, args.max_distance, logits)
    if args.json:
        items = searcher.items([h.id for hits in results for h in hits])
        print(json.dumps([{"query": str(q), "hits": [{"id": h.id, "distance": h.distance,
                                                       **items[h.id].to_dict()} for h in hits if h.id in items]}
                          for q, hits in zip(args.images, results, strict=True)], indent=2))
        return
    print(f"{'rank':>6}  {'distance':>8}  file")
    for query, hits in zip(args.images, results, strict=True):
        print(f"{query}:")
        for rank, hit in enumerate(hits, 1):
            print(f"{rank:>6}  {hit.distance:>8}  {hit.file}")




def _dedup(args: argparse.Namespace) -> None:
    import tempfile

    from nac_hash.index_data import dedup
    from nac_hash.index_data.indexer import build
    from nac_hash.index_data.store import CATALOG_NAME

    if args.undo:
        print(f"moved {dedup.undo_moves(args.undo)} files back")
        return
    if args.path is None:
        raise ValueError("give a folder or an index directory to search for duplicates (or --undo MANIFEST)")
    if args.max_distance < 0:
        raise ValueError(f"--max-distance must be at least 0, got {args.max_distance}")
    if not args.path.is_dir():
        raise FileNotFoundError(f"{args.path} is neither a folder of images nor an index directory")
    with tempfile.TemporaryDirectory() as scratch:
        index_dir = args.path
        if not (args.path / CATALOG_NAME).is_file():  # a folder of images: index it first, into scratch space
            index_dir = Path(scratch) / "index"
            build([args.path], index_dir, IndexOptions(checkpoint=args.checkpoint))
        groups = dedup.find_groups(index_dir, args.max_distance)
    paths = dedup.write_report(groups, args.out, args.max_distance)
    extras = sum(len(g) - 1 for g in groups)
    print(f"{len(groups)} groups of near-duplicates within distance {args.max_distance}; {extras} files could go "
          f"(one kept per group): {paths['removable']}")
    print(f"groups: {paths['json']} and {paths['csv']}")
    if args.plot:
        dedup.contact_sheet(groups, args.out / "groups.png")
        print(f"contact sheet: {args.out / 'groups.png'}")
    if args.move_to:
        manifest = args.out / "moves.jsonl"
        print(f"moved {dedup.move_extras(groups, args.move_to, manifest)} files to {args.move_to}; "
              f"undo with: nac-hash dedup --undo {manifest}")


def add_dedup_command(commands: argparse._SubParsersAction) -> None:
    dedup = commands.add_parser("dedup", help="find near-duplicate images in a folder or an index")
    dedup.add_argument("path", nargs="?", type=Path, help="folder of images, or an index directory")
    dedup.add_argument("--max-distance", type=int, default=DEFAULT_DEDUP_DISTANCE,
                       help="largest Hamming distance between copies (default: %(default)s)")
    dedup.add_argument("--out", type=Path, default=Path("dedup"),
                       help="folder for groups.json, groups.csv, removable.txt (default: %(default)s)")
    dedup.add_argument("--plot", action="store_true", help="also write a contact sheet of the largest groups")
    dedup.add_argument("--move-to", type=Path, help="move every copy but the one kept per group here (never deletes)")
    dedup.add_argument("--undo", type=Path, metavar="MANIFEST", help="move the files a --move-to run moved back")
    dedup.add_argument("--checkpoint", help="model for a folder (default: the packaged model)")
    dedup.set_defaults(run=_dedup)


def add_index_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``index`` (with its subcommands) and ``search`` to the ``nac-hash`` parser."""
    index = commands.add_parser("index", help="build and maintain a Hamming index of image folders")
    actions = index.add_subparsers(dest="action", required=True)

    build = actions.add_parser("build", help="index every image under the folders into a new index")
    build.add_argument("images", nargs="+", type=Path, help="folders of images (searched recursively)")
    build.add_argument("--out", type=Path, required=True, help="index directory (replaced when the build ends)")
    add_dataclass_arguments(build, IndexOptions)
    build.set_defaults(run=_build)

    add = actions.add_parser("add", help="add new and changed images under the folders to an index")
    add.add_argument("index", type=Path, help="index directory")
    add.add_argument("images", nargs="+", type=Path, help="folders of images")
    add_dataclass_arguments(add, IndexOptions)
    add.set_defaults(run=_add)

    remove = actions.add_parser("remove", help="remove items by id or by path")
    remove.add_argument("index", type=Path, help="index directory")
    remove.add_argument("--id", dest="ids", type=int, action="append", default=[], help="item id (repeatable)")
    remove.add_argument("--path", dest="paths", type=Path, action="append", default=[],
                        help="indexed file path (repeatable)")
    remove.set_defaults(run=_remove)

    merge = actions.add_parser("merge", help="merge indexes built with --shard i/n into one")
    merge.add_argument("shards", nargs="+", type=Path, help="index directories of the shards")
    merge.add_argument("--out", type=Path, required=True, help="index directory (replaced when the merge ends)")
    merge.add_argument("--index-type", help="(default: the first shard's)")
    merge.set_defaults(run=_merge)

    rebuild = actions.add_parser("rebuild", help="rebuild the FAISS index from the stored codes")
    rebuild.add_argument("index", type=Path, help="index directory")
    rebuild.add_argument("--index-type", help="flat, ivf, hnsw, multihash or a FAISS binary factory string "
                         "(default: the current type)")
    rebuild.set_defaults(run=_rebuild)

    info = actions.add_parser("info", help="print what an index holds, as JSON")
    info.add_argument("index", type=Path, help="index directory")
    info.set_defaults(run=_info)

    search = commands.add_parser("search", help="print the nearest indexed images of query images")
    search.add_argument("index", type=Path, help="index directory")
    search.add_argument("images", nargs="+", type=Path, help="query image files")
    search.add_argument("-k", type=int, default=10, help="neighbours per query (default: 10)")
    search.add_argument("--max-distance", type=int, help="drop neighbours farther than this Hamming distance")
    search.add_argument("--radius", type=int, help="return every item within this Hamming distance instead of top k")
    search.add_argument("--checkpoint", help="model (default: the one the index was built with)")
    search.add_argument("--threads", type=int, help="FAISS search threads (default: all cores)")
    search.add_argument("--mmap", action="store_true", help="memory-map a flat index instead of loading it")
    search.add_argument("--json", action="store_true", help="print JSON")
    add_dataclass_arguments(search, SearchParams)
    search.set_defaults(run=_search)


def _bench_index(args: argparse.Namespace) -> None:
    from nac_hash.index_data.benchmark import bench_index

    result = bench_index(args.images, _options(args), args.out)
    print(f"{result['images']} images indexed in {result['seconds']} s: {result['images_per_second']} images/s")


def _bench_search(args: argparse.Namespace) -> None:
    from nac_hash.index_data.benchmark import bench_search
    from nac_hash.index_data.store import IndexStore

    store = IndexStore(args.codes_from)
    _, seed_codes = store.catalog.codes()
    store.close()
    result = bench_search(seed_codes, args.size, args.index_types.split(","), args.queries, args.k, args.threads,
                          SearchParams(**set_fields(SearchParams, args)), out=args.out)
    print(f"{args.size:,} codes, {args.queries} queries, k = {args.k}")
    for index_type, row in result["index_types"].items():
        print(f"  {index_type:10s} recall@{args.k} {row['recall_at_k']:.3f}  build {row['build_seconds']:7.2f} s  " +
              "  ".join(f"{name}: ours {r['ours_qps']:9.1f} q/s, raw FAISS {r['raw_faiss_qps']:9.1f} q/s"
                        for name, r in row.items() if name.startswith("batch")))
        for name, r in row.items():
            if name.startswith("batch") and "searcher_with_metadata_qps" in r:
                print(f"  searcher with metadata, {name}: {r['searcher_with_metadata_qps']:9.1f} q/s "
                      f"({r['searcher_over_raw']:.0%} of raw FAISS)")


def _bench_copies(args: argparse.Namespace) -> None:
    from nac_hash.index_data.copies import ALL_TRANSFORMS, bench_copies

    result = bench_copies(args.out, args.originals, args.distractors or None, args.queries, args.checkpoint,
                          tuple(args.methods.split(",")), args.seed)
    print(f"{result['database_size']:,} database images, {args.queries} queries per transform; recall@1:")
    print(f"  {'method':8s} {'bits':>4s} {'mean':>6s}  " + " ".join(f"{t:>9s}" for t in ALL_TRANSFORMS))
    for method, scores in result["methods"].items():
        print(f"  {method:8s} {scores['bits']:4d} {scores['mean_recall@1']:6.3f}  " +
              " ".join(f"{scores[t]['recall@1']:9.3f}" for t in ALL_TRANSFORMS))
    print(f"results and plot: {args.out}")


def add_bench_commands(actions: argparse._SubParsersAction) -> None:
    """Add ``bench index``, ``bench search`` and ``bench copies`` to the ``nac-hash bench`` parser."""
    copies = actions.add_parser("copies", help="copy detection: NAC against perceptual hashes, per transform")
    copies.add_argument("--originals", default="data/CIFAR-10-images/test", help="folder (default: %(default)s)")
    copies.add_argument("--distractors", default="data/CIFAR-10-images/train",
                        help="folder of other images in the database; '' for none (default: %(default)s)")
    copies.add_argument("--queries", type=int, default=1000, help="originals copied per transform (default: 1000)")
    copies.add_argument("--methods", default="nac,phash,dhash,ahash,whash,lsh,itq", help="(default: %(default)s)")
    copies.add_argument("--checkpoint", help="NAC model (default: the packaged model)")
    copies.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    copies.add_argument("--out", type=Path, required=True, help="output folder")
    copies.set_defaults(run=_bench_copies)
    index = actions.add_parser("index", help="time a full build: images/s from files to a saved index")
    index.add_argument("images", nargs="+", type=Path, help="folders of images")
    index.add_argument("--out", type=Path, help="results JSON")
    add_dataclass_arguments(index, IndexOptions)
    index.set_defaults(run=_bench_index)

    search = actions.add_parser("search", help="queries/s and recall@k of every index type against raw FAISS")
    search.add_argument("--codes-from", type=Path, required=True,
                        help="index whose codes seed the synthetic database and the queries")
    search.add_argument("--size", type=int, default=1_000_000, help="database codes (default: 1,000,000)")
    search.add_argument("--index-types", default="flat,ivf,hnsw,multihash", help="comma-separated")
    search.add_argument("--queries", type=int, default=1000)
    search.add_argument("-k", type=int, default=100)
    search.add_argument("--threads", type=int, help="FAISS threads (default: all cores)")
    search.add_argument("--out", type=Path, help="results JSON")
    add_dataclass_arguments(search, SearchParams)
    search.set_defaults(run=_bench_search)
