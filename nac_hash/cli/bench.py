"""``nac-hash bench map|copies|dedup|index|search``: the benchmarks, whose code sits beside this module."""

from __future__ import annotations

import argparse
from pathlib import Path

from nac_hash.cli import with_examples
from nac_hash.cli.train import scores_line
from nac_hash.index_data.config import IndexOptions
from nac_hash.index_data.search_params import SearchParams
from nac_hash.options import add_dataclass_arguments, set_fields


def _bench_map(args: argparse.Namespace) -> None:
    from nac_hash.cli.bench_map import bench_map

    checkpoints = dict(pair.split("=", 1) for pair in args.checkpoint)
    results = bench_map(args.out, protocol=args.protocol, dataset=args.dataset, data_root=args.root,
                        bits=[int(b) for b in args.bits.split(",")], methods=args.methods.split(","),
                        checkpoints=checkpoints, split_seed=args.split_seed, device=args.device,
                        float_features=args.features, linear=args.linear)
    print(f"{results['dataset']}, protocol {results['protocol']}, split seed {results['split_seed']}")
    print(f"cross-check: {results['cross_check']}")
    for row in results["rows"]:
        check = row["cross_check"]
        print(f"  {row['method']:8s} {row['bits']:3d} bits  {scores_line(row)}  "
              f"cross-check ours / scikit-learn {check['ours']:.6f} / {check['sklearn']:.6f}")
        if "float_map_all" in row:
            linear = f"  linear accuracy {row['linear_accuracy']:.4f}" if "linear_accuracy" in row else ""
            print(f"  {'':8s} float features by cosine: mAP@all {row['float_map_all']:.4f}  mAP@1000 "
                  f"{row['float_map@1000']:.4f}{linear}")
    for skipped in results["skipped"]:
        print(f"  {skipped['method']:8s} {skipped['bits']:3d} bits  skipped: {skipped['reason']}")
    print(f"results, plots and split: {args.out}")


def _bench_index(args: argparse.Namespace) -> None:
    from nac_hash.cli.bench_index import bench_index

    result = bench_index(args.images, IndexOptions(**set_fields(IndexOptions, args)), args.out)
    print(f"{result['images']} images indexed in {result['seconds']} s: {result['images_per_second']} images/s")


def _bench_search(args: argparse.Namespace) -> None:
    from nac_hash.cli.bench_index import bench_search
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
    from nac_hash.cli.bench_copies import ALL_TRANSFORMS, bench_copies

    result = bench_copies(args.out, args.originals, args.distractors or None, args.queries, args.checkpoint,
                          tuple(args.methods.split(",")), args.seed)
    print(f"{result['database_size']:,} database images, {args.queries} queries per transform; recall@1:")
    print(f"  {'method':8s} {'bits':>4s} {'mean':>6s}  " + " ".join(f"{t:>9s}" for t in ALL_TRANSFORMS))
    for method, scores in result["methods"].items():
        print(f"  {method:8s} {scores['bits']:4d} {scores['mean_recall@1']:6.3f}  " +
              " ".join(f"{scores[t]['recall@1']:9.3f}" for t in ALL_TRANSFORMS))
    print(f"results and plot: {args.out}")


def _bench_dedup(args: argparse.Namespace) -> None:
    from nac_hash.cli.bench_dedup import bench_dedup

    result = bench_dedup(args.out, args.originals, args.count, args.side, tuple(args.methods.split(",")), args.seed,
                         tuple(args.transforms.split(",")) if args.transforms else None)
    print(f"{result['files']:,} files: {args.count} originals and a copy of each")
    print(f"  {'method':10s} {'precision':>9s} {'recall':>7s} {'seconds':>8s}")
    for method, row in result["methods"].items():
        print(f"  {method:10s} {row['precision']:9.3f} {row['recall']:7.3f} {row['wall_time_s']:8.1f}")
    print(f"results and the planted folder: {args.out}")


def add_bench(bench: argparse.ArgumentParser) -> None:
    from nac_hash.training.config import CIFAR10_ROOT

    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    bench_map = benchmarks.add_parser("map", help="retrieval quality of several methods on one split")
    bench_map.add_argument("--dataset", help="cifar10, flickr25k or folder (default: cifar10)")
    bench_map.add_argument("--protocol", help="cifar10-nac, cifar10-i, cifar10-ii, flickr25k or folder (default: "
                           "the dataset's)")
    bench_map.add_argument("--root", default=CIFAR10_ROOT, help="dataset folder (default: %(default)s)")
    bench_map.add_argument("--bits", default="128", help="comma-separated code lengths (pHash is always 64)")
    bench_map.add_argument("--methods", default="nac,lsh,itq,phash",
                           help="comma-separated: nac, nac_mq, simclr, dim, aet (from checkpoints), lsh, itq, phash")
    bench_map.add_argument("--checkpoint", action="append", default=[], metavar="METHOD=PATH",
                           help="checkpoint of a learned method (nac defaults to the packaged model)")
    bench_map.add_argument("--split-seed", type=int, default=0)
    bench_map.add_argument("--device", default="auto")
    bench_map.add_argument("--out", type=Path, required=True, help="output folder")
    bench_map.add_argument("--features", action="store_true",
                           help="also score each learned method's float features ranked by cosine, unhashed")
    bench_map.add_argument("--linear", action="store_true", help="also fit a logistic-regression classifier on "
                           "each learned method's frozen features of the training images; report its accuracy "
                           "on the queries (linear evaluation)")
    bench_map.set_defaults(run=_bench_map)
    copies = benchmarks.add_parser("copies", help="copy detection: NAC against perceptual hashes, per transform")
    copies.add_argument("--originals", default="data/CIFAR-10-images/test", help="folder (default: %(default)s)")
    copies.add_argument("--distractors", default="data/CIFAR-10-images/train",
                        help="folder of other images in the database; '' for none (default: %(default)s)")
    copies.add_argument("--queries", type=int, default=1000, help="originals copied per transform (default: 1000)")
    copies.add_argument("--methods", default="nac,phash,dhash,ahash,whash,lsh,itq", help="(default: %(default)s)")
    copies.add_argument("--checkpoint", help="NAC model (default: the packaged model)")
    copies.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    copies.add_argument("--out", type=Path, required=True, help="output folder")
    copies.set_defaults(run=_bench_copies)
    dedup = benchmarks.add_parser("dedup", help="nac-hash dedup against imagededup's hashes on planted copies")
    dedup.add_argument("--originals", default="data/CIFAR-10-images/test", help="folder (default: %(default)s)")
    dedup.add_argument("--count", type=int, default=2000, help="originals, each with one copy (default: %(default)s)")
    dedup.add_argument("--side", type=int, default=256, help="side in pixels of each original (default: %(default)s)")
    dedup.add_argument("--methods", default="nac-hash,PHash,DHash,WHash", help="(default: %(default)s)")
    dedup.add_argument("--transforms", help="comma-separated edits of the copies, used in turn (default: every edit "
                       "of bench copies)")
    dedup.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    dedup.add_argument("--out", type=Path, required=True, help="output folder (the planted folder goes inside)")
    dedup.set_defaults(run=_bench_dedup)
    index = benchmarks.add_parser("index", help="time a full build: images/s from files to a saved index")
    index.add_argument("images", nargs="+", type=Path, help="folders of images")
    index.add_argument("--out", type=Path, help="results JSON")
    add_dataclass_arguments(index, IndexOptions)
    index.set_defaults(run=_bench_index)

    search = benchmarks.add_parser("search", help="queries/s and recall@k of every index type against raw FAISS")
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
    with_examples(benchmarks, SUBCOMMAND_EXAMPLES)


SUBCOMMAND_EXAMPLES = {
    "map": "nac-hash bench map --methods nac,lsh,itq,phash --features --linear --out results/bench",
    "copies": "nac-hash bench copies --queries 1000 --out results/copies",
    "dedup": "nac-hash bench dedup --count 2000 --out results/dedup",
    "index": "nac-hash bench index data/CIFAR-10-images --out results/index-speed.json",
    "search": "nac-hash bench search --codes-from photos.idx --size 1000000 --out results/search-speed.json",
}


CONFIGURE = {"bench": add_bench}
