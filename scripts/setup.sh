#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install nac-hash with its pinned dependencies and the dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "nac-hash needs Python >= 3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
# PyPI's torch carries CUDA: the first install needs about 7 GB free, and runs out of space halfway without it.
if ! .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'; then
  free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
  if [ "$free_kb" -lt 7000000 ]; then
    echo "installing nac-hash needs about 7 GB free here (torch with CUDA), and only" \
      "$(awk -v kb="$free_kb" 'BEGIN {printf "%.1f", kb / 1e6}') GB are" >&2
    exit 1
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
