"""Dataclass fields as command-line options: one typed place for each application's settings.

``epochs`` becomes ``--epochs`` and ``index_type`` becomes ``--index-type``; options default to None so that
unset ones can be told apart from ones the user set, and the dataclass's own default applies.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: object) -> type:
    """int | None -> int; plain types pass through."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation  # type: ignore[return-value]


def plain(text: str) -> str:
    """Docstring text as --help shows it: ``code`` marks dropped."""
    return text.replace("``", "")


def attribute_docs(cls: type) -> dict[str, str]:
    """``name: text`` lines of the class docstring's Attributes section (also read by scripts/gen_docs.py)."""
    docs: dict[str, str] = {}
    name, indent = None, 0
    for line in (cls.__doc__ or "").splitlines():
        match = re.match(r"(\s+)(\w+): (.+)", line)
        if match and (name is None or len(match.group(1)) <= indent):
            name, indent = match.group(2), len(match.group(1))
            docs[name] = match.group(3)
        elif name and line.strip() and len(line) - len(line.lstrip()) > indent:
            docs[name] += " " + line.strip()  # a continuation line
        else:
            name = None
    return docs


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of the dataclass ``cls``, with help from its docstring's Attributes."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    for field in dataclasses.fields(cls):
        kind = _base_type(hints[field.name])
        help_text = plain(f"{docs.get(field.name, '')} (default: {field.default})".strip()).replace("%", "%%")
        if kind is bool:
            parser.add_argument(option_name(field.name), action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(option_name(field.name), type=kind, default=None, metavar=kind.__name__.upper(),
                                help=help_text)


def set_fields(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` that were given on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
