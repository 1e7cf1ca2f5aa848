"""What a user installs: the wheel and sdist hold every source and data file, and the installed wheel runs
``nac-hash`` (version, index build, serve, searches) from a folder outside the checkout."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, free_port, write_class_folders

import nac_hash

# Repository folder -> where its files go in the wheel (setup.py's FOLDERS).
WHEEL_FOLDERS = {"nac_hash": "nac_hash", "training": "nac_hash/training", "index_data": "nac_hash/index_data",
                 "service": "nac_hash/service"}
pytestmark = pytest.mark.slow


def shipped_files() -> list[str]:
    """Every file git tracks under the four package folders."""
    listed = subprocess.run(["git", "ls-files", *WHEEL_FOLDERS], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert len(listed) > 60, "git ls-files found too few files: is this a checkout?"
    return listed


def wheel_path(folder_file: str) -> str:
    top, rest = folder_file.split("/", 1)
    return f"{WHEEL_FOLDERS[top]}/{rest}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True)
    (built,) = out.glob("nac_hash-*.whl")
    return built


def test_wheel_holds_every_source_and_data_file_under_one_import_name(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(wheel_path(f) for f in shipped_files() if wheel_path(f) not in names)
    assert not missing, f"not in the wheel: {missing}"
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"nac_hash"}
    assert wheel.name.startswith(f"nac_hash-{nac_hash.__version__}-")


def test_sdist_holds_every_file_the_wheel_is_built_from(tmp_path):
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    name = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.split()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        names = {member.split("/", 1)[1] for member in sdist.getnames() if "/" in member}
    missing = sorted(f for f in [*shipped_files(), "setup.py", "pyproject.toml", "README.md"] if f not in names)
    assert not missing, f"not in the sdist: {missing}"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; its dependencies are read from this test's own
    environment (a path file), so that the test needs no network and no copy of torch."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    return venv / "bin"


def test_installed_wheel_indexes_serves_and_searches_outside_the_checkout(installed, tmp_path):
    env = {**os.environ, "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ""}

    def run(*command: str) -> str:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout

    where = run(str(installed / "python"), "-c", "import nac_hash; print(nac_hash.__file__)")
    assert Path(where).resolve().is_relative_to(installed.parent.resolve())  # the wheel's copy, not the checkout's
    assert run("nac-hash", "--version").strip() == f"nac-hash {nac_hash.__version__}"
    write_class_folders(tmp_path / "photos", classes=2, per_class=4)
    assert "8 added" in run("nac-hash", "index", "build", "photos", "--out", "idx", "--no-progress")
    port = free_port()
    server = subprocess.Popen(["nac-hash", "serve", "--index", "idx", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        summary = run(str(installed / "python"), str(REPO / "scripts" / "service_smoke.py"),
                      f"http://127.0.0.1:{port}", str(tmp_path / "photos" / "class1" / "0002.png"))
    except subprocess.CalledProcessError as e:
        server.kill()
        pytest.fail(f"{e.stdout}{e.stderr}\nserver:\n{server.communicate()[0]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "class1/0002.png at distance 0" in summary
