"""Where a result came from: command line, git commit, hardware, library versions."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch


def git_commit(path: str | Path = ".") -> str | None:
    """The commit checked out at ``path`` (with ``-dirty`` if the tree has changes), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def cpuinfo_field(name: str) -> str | None:
    """The first value of ``name`` ("model name", "flags") in /proc/cpuinfo; None where it is not there."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == name), None)


def hardware(device: torch.device | None = None) -> dict:
    """The processor (its name and the widest vector instructions PyTorch uses on it), threads, versions, GPU."""
    info = {"cpu": cpuinfo_field("model name") or platform.processor() or platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__}
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nac-hash")
    except PackageNotFoundError:
        return "unknown"


def portable(path: str | Path) -> str:
    """A path as a result records it: relative to the working directory (the checkout, for the commands in
    the docs) or to the package (``nac_hash/assets/default.safetensors``) when inside them, else as given, so
    that results do not carry the paths of the machine that made them. A link is judged where it lies, then
    where it points (a virtual environment's python lies in the checkout and points outside it)."""
    for located in (Path(os.path.abspath(path)), Path(path).resolve()):
        for base, prefix in ((Path.cwd(), Path()), (Path(__file__).resolve().parent, Path("nac_hash"))):
            if located.is_relative_to(base):
                return str(prefix / located.relative_to(base))
    return str(path)


def command_line() -> str:
    """The command that is running, with the paths inside the checkout made relative (:func:`portable`)."""
    if Path(sys.argv[0]).name == "nac-hash" or Path(sys.argv[0]).parts[-3:] == ("nac_hash", "cli", "__main__.py"):
        return shlex.join(["nac-hash", *sys.argv[1:]])
    words = [sys.executable, *sys.argv]
    return shlex.join([portable(w) if w.startswith("/") else w for w in words])


def provenance(device: torch.device | None = None) -> dict:
    """Command, commit (or, outside a checkout, the package version), hardware and time of a result."""
    return {
        "command": command_line(),
        "git_commit": git_commit(Path(__file__).parent),
        "package_version": package_version(),
        "hardware": hardware(device),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
