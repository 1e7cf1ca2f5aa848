"""Committed results are portable: no results file records a path of the machine that produced it."""

from __future__ import annotations

import json
import re

from helpers import REPO

ABSOLUTE = re.compile(r"(^|[\s=\"'])/(?!/)[A-Za-z]")  # a path from the root, not a URL's path after a word
CONTAINER_PATHS = re.compile(r"(^|\s)/(images|data)(/|\s|$)")  # mount points inside the image (Dockerfile, compose)


def strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_results_record_relative_paths():
    found = []
    for path in sorted((REPO / "benchmarks" / "results").rglob("*.json*")):
        lines = [path.read_text()] if path.suffix == ".json" else path.read_text().splitlines()
        for line in filter(str.strip, lines):
            found += [f"{path.relative_to(REPO)}: {s[:80]}" for s in strings(json.loads(line))
                      if ABSOLUTE.search(CONTAINER_PATHS.sub(" ", s)) and not s.startswith(("service /", "GET /"))]
    assert not found, "absolute paths in results:\n" + "\n".join(found)


def test_new_results_record_paths_relative_to_the_checkout(tmp_path, monkeypatch):
    from nac_hash.checkpoint import default_checkpoint
    from nac_hash.provenance import portable

    monkeypatch.chdir(REPO)
    assert portable(REPO / "runs" / "x" / "model.safetensors") == "runs/x/model.safetensors"
    assert portable(default_checkpoint()) == "nac_hash/assets/default.safetensors"
    assert portable(tmp_path / "elsewhere.json") == str(tmp_path / "elsewhere.json")  # outside: as given


def test_a_link_in_the_checkout_is_recorded_where_it_lies(tmp_path, monkeypatch):
    """A virtual environment's python lies in the checkout but links to an interpreter outside it."""
    from nac_hash.provenance import portable

    interpreter = tmp_path / "usr" / "python3"
    interpreter.parent.mkdir()
    interpreter.touch()
    link = tmp_path / "checkout" / ".venv" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(interpreter)
    monkeypatch.chdir(tmp_path / "checkout")
    assert portable(link) == ".venv/python"
    assert portable(interpreter) == str(interpreter)
