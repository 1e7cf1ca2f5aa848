"""The documentation: pages generated from the code and the results are current, written pages restate no
measured figure, the site builds in strict mode, a built page opens in the browser without console errors and
its navigation works, and the README stays short."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, REPO

BIN = Path(sys.executable).parent


def test_generated_pages_match_the_code():
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"], capture_output=True,
                          text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_written_pages_restate_no_measured_figure():
    """Measured figures live on the generated pages, read from their JSON, and in the README, whose figures a test
    checks against theirs: a written page that restated one would go stale unchecked."""
    generated = {"cli.md", "settings.md", "learners.md", "results.md"}
    for page in (REPO / "docs").glob("*.md"):
        if page.name not in generated:
            assert not re.findall(r"\b0\.\d{3,4}\b", page.read_text()), page.name


def test_help_texts_are_plain_text():
    pages = (REPO / "docs" / "cli.md").read_text().replace("```", "")
    assert "``" not in pages and ":func:" not in pages and ":mod:" not in pages


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 160
    commands = [line.split("#")[0].strip() for line in lines[:10] if line.startswith("bash ")]
    assert commands == ["bash scripts/quickstart.sh", "bash .ci/run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in ("index", "getting-started", "training", "search-and-duplicates", "service", "architecture",
                 "method", "results", "learners", "cli", "settings"):
        built = site / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.is_file(), page
    assert "nac-hash train" in (site / "cli" / "index.html").read_text()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_built_page_opens_in_the_browser_and_its_navigation_works(site):
    sync_api = pytest.importorskip("playwright.sync_api")

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            page.get_by_role("link", name="Getting started").first.click()
            page.wait_for_url("**/getting-started/")
            assert "Python API" in page.content()
            browser.close()
    finally:
        server.shutdown()
    assert errors == []


def test_every_command_has_a_one_line_example():
    sys.path.insert(0, str(REPO / "scripts"))
    from gen_docs import subcommands

    from nac_hash.cli import build_parser

    for command, parser in subcommands(build_parser(full=True), "nac-hash")[1:]:
        assert (parser.epilog or "").startswith("example: nac-hash "), command
        assert "\n" not in parser.epilog, command
