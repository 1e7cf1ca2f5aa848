"""The nac-hash command line: the application layer over training, the index and the service.

One module per group of commands (train.py: train, eval, export, data; index.py: index, search, dedup;
serve.py; bench.py with the benchmarks' code beside it). Building the parser imports only the standard library:
a command's module, and with it the libraries it needs, is imported only for the command that runs (or for
``build_parser(full=True)``, which the documentation reads).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from nac_hash import __version__
from nac_hash.errors import NacHashError
from nac_hash.training.methods import METHODS  # the registry imports only the standard library

USER_ERRORS: tuple[type[Exception], ...] = (NacHashError, ValueError, OSError)  # OSError: missing or unwritable paths

# Command -> (one-line help, the module of nac_hash.cli that configures and runs it).
COMMANDS = {
    "train": (f"learn hash codes (--method: {', '.join(METHODS)})", "train"),
    "eval": ("score a checkpoint on a retrieval protocol", "train"),
    "export": ("write an fp16, inference-only copy of a checkpoint", "train"),
    "data": ("find or download a dataset", "train"),
    "index": ("build and maintain a Hamming index of image folders", "index"),
    "search": ("print the nearest indexed images of query images", "index"),
    "dedup": ("find near-duplicate images in a folder or an index", "index"),
    "serve": ("run the HTTP search service and web page", "serve"),
    "bench": ("benchmarks: map (retrieval quality), copies (copy detection), dedup (against imagededup), index "
              "(indexing speed), search (search speed)", "bench"),
}


# One example per command, shown under its --help.
EXAMPLES = {
    "train": "nac-hash train --dataset folder --data-root ~/photos --time-budget 30m --out-dir runs/photos",
    "eval": "nac-hash eval runs/photos/model.safetensors --baselines lsh,itq,phash",
    "export": "nac-hash export runs/photos/model.safetensors --out photos-model.safetensors --itq features",
    "data": "nac-hash data cifar10 --dir data",
    "index": "nac-hash index build ~/photos --out photos.idx",
    "search": "nac-hash search photos.idx query.jpg -k 10",
    "dedup": "nac-hash dedup ~/photos --plot --out dedup",
    "serve": "nac-hash serve --index photos.idx --port 8000",
    "bench": "nac-hash bench map --out results/bench",
}


def with_example(parser: argparse.ArgumentParser, example: str) -> argparse.ArgumentParser:
    parser.epilog = f"example: {example}"
    return parser


def with_examples(subcommands: argparse._SubParsersAction, examples: dict[str, str]) -> None:
    """Give each subcommand (of index, of bench) its example."""
    for name, parser in subcommands.choices.items():
        with_example(parser, examples[name])


def _chosen(argv: list[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None, full: bool = False) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` (every command with ``full``) gets its options."""
    parser = argparse.ArgumentParser(prog="nac-hash", description="Unsupervised 128-bit image hashing with Neural "
                                     "Activation Coding, and Hamming search.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = _chosen(sys.argv[1:] if argv is None else argv)
    for name, (help_text, module) in COMMANDS.items():
        if full or name == chosen:
            configure = importlib.import_module(f"nac_hash.cli.{module}").CONFIGURE[name]
            configure(with_example(commands.add_parser(name, help=help_text, description=help_text[0].upper()
                                                       + help_text[1:]), EXAMPLES[name]))
        else:
            commands.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
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
