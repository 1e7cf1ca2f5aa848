"""The ``nac-hash`` command line: one subcommand per application, errors as one clear line.

Subcommands import their application lazily, so ``nac-hash --help`` stays fast and the library never
depends on the applications.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from nac_hash import __version__
from nac_hash.errors import NacHashError
from nac_hash.model_config import ROTATION_INPUTS
from nac_hash.options import plain

USER_ERRORS: tuple[type[Exception], ...] = (NacHashError, ValueError, OSError)  # OSError: missing or unwritable paths


def _train(args: argparse.Namespace) -> None:
    from nac_hash.training.config import config_from_args
    from nac_hash.training.train import train

    path = train(config_from_args(args))
    print(f"model checkpoint: {path}")


def _scores(scores: dict) -> str:
    """The headline metrics of a results row, one line."""
    return (f"mAP@all {scores['map_all']:.4f}  mAP@1000 {scores['map@1000']:.4f}  tie-aware mAP "
            f"{scores['tie_aware_map']:.4f}  P@1000 {scores['precision@1000']:.4f}  "
            f"distinct codes {scores['distinct_codes']}")


def _eval(args: argparse.Namespace) -> None:
    from nac_hash.training.evaluate import evaluate

    if args.checkpoint is None:
        from nac_hash.checkpoint import default_checkpoint

        args.checkpoint = str(default_checkpoint())
    out = args.out or Path("results") / f"{Path(args.checkpoint).stem}-{args.protocol or 'default'}.json"
    results = evaluate(args.checkpoint, out, protocol=args.protocol, dataset=args.dataset,
                       data_root=args.data_root, split_seed=args.split_seed,
                       baselines=tuple(b for b in args.baselines.split(",") if b), device=args.device,
                       batch_size=args.batch_size)
    print(f"{results['dataset']}, protocol {results['protocol']} (scored by {results['metric']}), "
          f"{results['bits']} bits, split seed {results['split_seed']}")
    for name, scores in results["methods"].items():
        print(f"  {name:8s} {_scores(scores)}")
    for name, reason in results["skipped_baselines"].items():
        print(f"  {name:8s} skipped: {reason}")
    print(f"results: {out}")


def _export(args: argparse.Namespace) -> None:
    from nac_hash.checkpoint import export_checkpoint

    metadata = {}
    if args.results:
        results = json.loads(args.results.read_text())
        method = next(iter(results["methods"]))
        metadata["benchmark"] = {
            "dataset": results["dataset"], "protocol": results["protocol"], "metric": results["metric"],
            "split_seed": results["split_seed"], "map": results["methods"][method]["map"],
            "results_file": str(args.results),
        }
    if args.itq:
        from nac_hash.checkpoint import export_model, load_checkpoint
        from nac_hash.training.rotation import require_unrotated, training_images, with_code_rotation

        model, sidecar = load_checkpoint(args.checkpoint)
        require_unrotated(model)
        rotated = with_code_rotation(model, training_images(sidecar), rotation_input=args.itq)
        path = export_model(rotated, sidecar, args.out, metadata)
    else:
        path = export_checkpoint(args.checkpoint, args.out, metadata)
    print(f"exported {path} ({path.stat().st_size / 2**20:.1f} MiB, fp16, no inference head"
          f"{f', ITQ code rotation of the {args.itq}' if args.itq else ''})")


def _bench_map(args: argparse.Namespace) -> None:
    from nac_hash.training.bench import bench_map

    checkpoints = dict(pair.split("=", 1) for pair in args.checkpoint)
    results = bench_map(args.out, protocol=args.protocol, dataset=args.dataset, data_root=args.root,
                        bits=[int(b) for b in args.bits.split(",")], methods=args.methods.split(","),
                        checkpoints=checkpoints, split_seed=args.split_seed, device=args.device,
                        float_features=args.features, linear=args.linear)
    print(f"{results['dataset']}, protocol {results['protocol']}, split seed {results['split_seed']}")
    print(f"cross-check: {results['cross_check']}")
    for row in results["rows"]:
        check = row["cross_check"]
        print(f"  {row['method']:8s} {row['bits']:3d} bits  {_scores(row)}  "
              f"cross-check ours / scikit-learn {check['ours']:.6f} / {check['sklearn']:.6f}")
        if "float_map_all" in row:
            linear = f"  linear accuracy {row['linear_accuracy']:.4f}" if "linear_accuracy" in row else ""
            print(f"  {'':8s} float features by cosine: mAP@all {row['float_map_all']:.4f}  mAP@1000 "
                  f"{row['float_map@1000']:.4f}{linear}")
    for skipped in results["skipped"]:
        print(f"  {skipped['method']:8s} {skipped['bits']:3d} bits  skipped: {skipped['reason']}")
    print(f"results, plots and split: {args.out}")


def _data(args: argparse.Namespace) -> None:
    from nac_hash.training.cifar10_data import cifar10_folder

    print(cifar10_folder(args.dir, progress=not args.quiet))


def _serve(args: argparse.Namespace) -> None:
    from nac_hash.service.server import serve
    from nac_hash.service.settings import Settings

    overrides = {"index": args.index, "checkpoint": args.checkpoint, "threads": args.threads,
                 "mmap": args.mmap or None, "host": args.host, "port": args.port,
                 "allow_open_writes": args.allow_open_writes or None}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    serve(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nac-hash", description=plain(__doc__.splitlines()[0]))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    from nac_hash.training.methods import METHODS

    train = commands.add_parser("train", help=f"learn hash codes (--method: {', '.join(METHODS)})")
    from nac_hash.training.config import CIFAR10_ROOT, add_config_arguments

    add_config_arguments(train)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("eval", help="score a checkpoint on a retrieval protocol")
    evaluate.add_argument("checkpoint", nargs="?",
                          help="model .safetensors (default: the packaged default model)")
    evaluate.add_argument("--protocol", help="cifar10-nac, cifar10-i, cifar10-ii, flickr25k or folder "
                          "(default: the checkpoint's)")
    evaluate.add_argument("--dataset", help="cifar10, flickr25k or folder (default: the checkpoint's)")
    evaluate.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
    evaluate.add_argument("--split-seed", type=int, help="(default: the checkpoint's)")
    evaluate.add_argument("--baselines", default="", help="comma-separated baselines to score on the same split: "
                          "lsh, itq, phash (default: none)")
    evaluate.add_argument("--out", type=Path, help="results JSON (default: results/<checkpoint>-<protocol>.json)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    evaluate.add_argument("--batch-size", type=int, default=500, help="images per forward pass (default: %(default)s)")
    evaluate.set_defaults(run=_eval)

    export = commands.add_parser("export", help="write an fp16, inference-only copy of a checkpoint")
    export.add_argument("checkpoint", help="model .safetensors")
    export.add_argument("--out", type=Path, required=True, help="target .safetensors")
    export.add_argument("--results", type=Path, help="results JSON of `nac-hash eval` to record beside it")
    export.add_argument("--itq", nargs="?", const="logits", choices=ROTATION_INPUTS,
                        help="add an ITQ rotation of the codes, fitted on the checkpoint's training images (its "
                        "recorded data and split): of the pre-activations (logits, the default) or of the "
                        "backbone's unit-length features (features; better on small aligned images)")
    export.set_defaults(run=_export)

    from nac_hash.index_data.cli import add_bench_commands, add_dedup_command, add_index_commands

    add_index_commands(commands)
    add_dedup_command(commands)
    data = commands.add_parser(
        "data", help="find or download a dataset", description="Print the folder of CIFAR-10's class-folder layout: "
        "$DATA_ROOT, else one in --dir, else unpacked from ../shared/data/cifar-10-images.tar.gz, else downloaded "
        "from the official address (or $NAC_HASH_CIFAR10_URL) into --dir, verified, and written out as PNG files.")
    data.add_argument("dataset", choices=["cifar10"])
    data.add_argument("--dir", type=Path, default=Path("data"), help="where datasets are kept (default: %(default)s)")
    data.add_argument("--quiet", action="store_true", help="no progress bars")
    data.set_defaults(run=_data)

    serve = commands.add_parser("serve", help="run the HTTP search service and web page")
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

    bench = commands.add_parser("bench", help="benchmarks: map (retrieval quality), copies (copy "
                                "detection), index (indexing speed), search (search speed)")
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
    add_bench_commands(benchmarks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"nac-hash {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nac-hash {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
