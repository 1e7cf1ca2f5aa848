"""scripts/setup.sh on a disk too full for torch: one line that says so, before pip starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from helpers import REPO


def test_first_install_refused_on_a_nearly_full_disk(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", checkout / "scripts")
    # A .venv without torch (nor pip), so the script goes straight to its disk check.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", checkout / ".venv"], check=True)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    df = fake_bin / "df"  # POSIX `df -Pk` with 200,000 KB available
    df.write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
                  "echo '/dev/x 1000000 800000 200000 80% /'\n")
    df.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "scripts/setup.sh"], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "installing nac-hash needs about 7 GB free here (torch with CUDA), and only 0.2 GB are"]
    assert not (checkout / ".venv" / "bin" / "pip").exists()  # nothing was installed
