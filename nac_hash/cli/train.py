"""``nac-hash train``, ``eval``, ``export`` and ``data``: learning codes and scoring them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nac_hash.model_config import ROTATION_INPUTS


def _train(args: argparse.Namespace) -> None:
    from nac_hash.training.config import config_from_args
    from nac_hash.training.train import train

    path = train(config_from_args(args))
    print(f"model checkpoint: {path}")


def scores_line(scores: dict) -> str:
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
        print(f"  {name:8s} {scores_line(scores)}")
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
    if args.dedup_distance is not None:
        metadata["dedup_distance"] = args.dedup_distance
    if args.itq:
        from nac_hash.checkpoint import export_model, load_checkpoint
        from nac_hash.training.rotation import require_unrotated, training_images, with_code_rotation

        model, sidecar = load_checkpoint(args.checkpoint)
        require_unrotated(model)
        rotated = with_code_rotation(model, training_images(sidecar), rotation_input=args.itq)
        path = export_model(rotated, sidecar, args.out, metadata, perceptual_bits=args.perceptual_bits)
    else:
        path = export_checkpoint(args.checkpoint, args.out, metadata, perceptual_bits=args.perceptual_bits)
    print(f"exported {path} ({path.stat().st_size / 2**20:.1f} MiB, fp16, no inference head"
          f"{f', ITQ code rotation of the {args.itq}' if args.itq else ''}"
          f"{f', {args.perceptual_bits} perceptual bits' if args.perceptual_bits else ''})")


def _data(args: argparse.Namespace) -> None:
    from nac_hash.training.cifar10_data import cifar10_folder

    print(cifar10_folder(args.dir, progress=not args.quiet))


def add_train(train: argparse.ArgumentParser) -> None:
    from nac_hash.training.config import add_config_arguments

    add_config_arguments(train)
    train.set_defaults(run=_train)


def add_eval(evaluate: argparse.ArgumentParser) -> None:
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


def add_export(export: argparse.ArgumentParser) -> None:
    export.add_argument("checkpoint", help="model .safetensors")
    export.add_argument("--out", type=Path, required=True, help="target .safetensors")
    export.add_argument("--results", type=Path, help="results JSON of `nac-hash eval` to record beside it")
    export.add_argument("--itq", nargs="?", const="logits", choices=ROTATION_INPUTS,
                        help="add an ITQ rotation of the codes, fitted on the checkpoint's training images (its "
                        "recorded data and split): of the pre-activations (logits, the default) or of the "
                        "backbone's unit-length features (features; better on small aligned images)")
    export.add_argument("--perceptual-bits", type=int, default=0, metavar="N",
                        help="append N bits of a mirror-invariant DCT hash to the codes: a copy model for dedup "
                        "(nac_hash.perceptual; default: none)")
    export.add_argument("--dedup-distance", type=int, metavar="D",
                        help="record D as the distance within which nac-hash dedup calls two images copies with this "
                        "model (calibrate it with nac-hash bench copies; default: none recorded, dedup uses 4)")
    export.set_defaults(run=_export)


def add_data(data: argparse.ArgumentParser) -> None:
    data.description = ("Print the folder of CIFAR-10's class-folder layout: $DATA_ROOT, else one in --dir, else "
                        "unpacked from ../shared/data/cifar-10-images.tar.gz, else downloaded from the official "
                        "address (or $NAC_HASH_CIFAR10_URL) into --dir, verified, and written out as PNG files.")
    data.add_argument("dataset", choices=["cifar10"])
    data.add_argument("--dir", type=Path, default=Path("data"), help="where datasets are kept (default: %(default)s)")
    data.add_argument("--quiet", action="store_true", help="no progress bars")
    data.set_defaults(run=_data)


CONFIGURE = {"train": add_train, "eval": add_eval, "export": add_export, "data": add_data}
