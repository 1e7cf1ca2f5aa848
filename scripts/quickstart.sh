#!/usr/bin/env bash
# The main job on the embedded defaults: install, unpack the CIFAR-10 JPEG copy from ../shared/data (or use
# DATA_ROOT), index all its images with the packaged default model, search with a few of them, and score the
# model's retrieval quality on the cifar10-nac protocol beside LSH and ITQ on pixels and pHash.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA_ROOT=${DATA_ROOT:-data/CIFAR-10-images}
if [ ! -d "$DATA_ROOT" ]; then
  archive=../shared/data/cifar-10-images.tar.gz
  [ -f "$archive" ] || { echo "no CIFAR-10 at $DATA_ROOT and no $archive; set DATA_ROOT" >&2; exit 1; }
  mkdir -p data && tar xzf "$archive" -C data
fi
.venv/bin/nac-hash index build "$DATA_ROOT" --out results/cifar10-index
.venv/bin/nac-hash search results/cifar10-index "$DATA_ROOT"/test/cat/0001.jpg "$DATA_ROOT"/test/ship/0001.jpg -k 5
.venv/bin/nac-hash eval --data-root "$DATA_ROOT" --baselines lsh,itq,phash --out results/default-cifar10-nac.json
