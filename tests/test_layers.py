"""The packages import one way: core <- training, index_data <- service <- the command line.

Every import in the source, at module level or inside a function, is checked against that direction (the wheel's
contents are checked in test_packaging.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import REPO

# Layer of each source folder -> the layers its modules may import (besides itself).
ALLOWED = {
    "core": set(),
    "training": {"core"},
    "index_data": {"core"},
    "service": {"core", "index_data"},
    "cli": {"core", "training", "index_data", "service"},
    "api": {"core", "index_data"},  # nac_hash/__init__.py: the Python API's names, imported on first use
}
FOLDERS = {"nac_hash": "core", "training": "training", "index_data": "index_data", "service": "service"}


def layer_of_module(name: str) -> str | None:
    """``nac_hash.training.train`` -> training; ``nac_hash.models`` -> core; non-project modules -> None."""
    parts = name.split(".")
    if parts[0] != "nac_hash":
        return None
    if len(parts) > 1 and parts[1] in ("training", "index_data", "service"):
        return parts[1]
    return "cli" if parts[1:2] == ["cli"] else "core"


def layer_of_file(path: Path) -> str:
    relative = path.relative_to(REPO)
    if relative.parts[:2] == ("nac_hash", "cli"):
        return "cli"
    return "api" if relative.as_posix() == "nac_hash/__init__.py" else FOLDERS[relative.parts[0]]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append((node.lineno, node.module))
    return modules


def source_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*.py"))


def test_every_import_follows_the_layers():
    wrong = []
    for path in source_files():
        layer = layer_of_file(path)
        for line, module in imported_modules(path):
            target = layer_of_module(module)
            if target is not None and target != layer and target not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({layer}) imports {module} ({target})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_layer_check_catches_a_wrong_import():
    assert layer_of_module("nac_hash.service.app") == "service"
    assert "service" not in ALLOWED[layer_of_file(REPO / "nac_hash" / "models.py")]
    assert "training" not in ALLOWED[layer_of_file(REPO / "index_data" / "indexer.py")]


def test_help_imports_no_heavy_library():
    code = ("import sys; from nac_hash.cli import build_parser; build_parser(['--help']); "
            "print(sorted({'torch', 'faiss', 'fastapi', 'numpy', 'PIL', 'yaml'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"
