"""``nac-hash index build|add|remove|merge|rebuild|info``, ``search`` and ``dedup``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from nac_hash.cli import with_examples
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


def trained_elsewhere(sidecar: dict, folders: list[Path]) -> str | None:
    """One line for a retrieval model trained on other images than ``folders`` (the packaged one was trained on
    CIFAR-10), with the command that trains on them instead; None when it was trained on them, or for a copy
    model, whose perceptual half holds on any images."""
    root = sidecar.get("training", {}).get("data_root")
    if root is None or sidecar["model"].get("perceptual_bits"):
        return None
    trained = Path(root).resolve()
    for folder in (Path(f).resolve() for f in folders):
        if trained == folder or trained in folder.parents or folder in trained.parents:
            return None
    data = "CIFAR-10" if sidecar.get("dataset") == "cifar10" else f"the images in {root}"
    return (f"note: this model was trained on {data}; on images unlike those it can rank below ITQ on pixels. "
            f"To train on yours: nac-hash train --dataset folder --data-root {folders[0]} --time-budget 30m "
            "--out-dir runs/my-model")


def _build(args: argparse.Namespace) -> None:
    from nac_hash.checkpoint import default_checkpoint, read_sidecar
    from nac_hash.index_data.indexer import build

    _print_report(build(args.images, args.out, _options(args)), args.out)
    note = trained_elsewhere(read_sidecar(args.checkpoint or default_checkpoint()), args.images)
    if note:
        print(note)


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
    from nac_hash.index_data import dedup

    if args.undo:
        print(f"moved {dedup.undo_moves(args.undo)} files back")
        return
    if args.path is None:
        raise ValueError("give a folder or an index directory to search for duplicates (or --undo MANIFEST)")
    if args.max_distance is not None and args.max_distance < 0:
        raise ValueError(f"--max-distance must be at least 0, got {args.max_distance}")
    groups, distance = dedup.duplicates_of(args.path, args.max_distance, args.checkpoint)
    paths = dedup.write_report(groups, args.out, distance)
    extras = sum(len(g) - 1 for g in groups)
    print(f"{len(groups)} groups of near-duplicates within distance {distance}; {extras} files could go "
          f"(one kept per group): {paths['removable']}")
    print(f"groups: {paths['json']} and {paths['csv']}")
    if args.plot:
        dedup.contact_sheet(groups, args.out / "groups.png")
        print(f"contact sheet: {args.out / 'groups.png'}")
    if args.move_to:
        manifest = args.out / "moves.jsonl"
        print(f"moved {dedup.move_extras(groups, args.move_to, manifest)} files to {args.move_to}; "
              f"undo with: nac-hash dedup --undo {manifest}")


def add_dedup(dedup: argparse.ArgumentParser) -> None:
    dedup.add_argument("path", nargs="?", type=Path, help="folder of images, or an index directory")
    dedup.add_argument("--max-distance", type=int,
                       help="largest Hamming distance between copies (default: the one the model records, "
                       f"else {DEFAULT_DEDUP_DISTANCE})")
    dedup.add_argument("--out", type=Path, default=Path("dedup"),
                       help="folder for groups.json, groups.csv, removable.txt (default: %(default)s)")
    dedup.add_argument("--plot", action="store_true", help="also write a contact sheet of the largest groups")
    dedup.add_argument("--move-to", type=Path, help="move every copy but the one kept per group here (never deletes)")
    dedup.add_argument("--undo", type=Path, metavar="MANIFEST", help="move the files a --move-to run moved back")
    dedup.add_argument("--checkpoint", help="model for a folder: a file, or a packaged model's name (default: "
                       "copies, the packaged copy-detection model)")
    dedup.set_defaults(run=_dedup)


def add_index(index: argparse.ArgumentParser) -> None:
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
    with_examples(actions, SUBCOMMAND_EXAMPLES)



def add_search(search: argparse.ArgumentParser) -> None:
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


SUBCOMMAND_EXAMPLES = {
    "build": "nac-hash index build ~/photos ~/more --out photos.idx --index-type hnsw",
    "add": "nac-hash index add photos.idx ~/photos",
    "remove": "nac-hash index remove photos.idx --id 42 --path ~/photos/old.jpg",
    "merge": "nac-hash index merge shard0.idx shard1.idx --out photos.idx",
    "rebuild": "nac-hash index rebuild photos.idx --index-type flat",
    "info": "nac-hash index info photos.idx",
}


CONFIGURE = {"index": add_index, "search": add_search, "dedup": add_dedup}
