#!/usr/bin/env bash
# The main job on the embedded defaults: install, find or fetch CIFAR-10, index all its images with the packaged
# default model, search with two of them, and score the model's retrieval quality beside LSH, ITQ and pHash.
#
# CIFAR-10 comes from DATA_ROOT if set, else data/, else ../shared/data/ beside a project checkout, else the
# official archive (about 163 MB; NAC_HASH_CIFAR10_URL names a mirror), checked and written out as PNG files
# (`nac-hash data cifar10`). PROTOCOL picks the scoring protocol (default cifar10-nac); NAC_HASH_SKIP_SETUP=1
# reuses an installed .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${NAC_HASH_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
nac_hash=.venv/bin/nac-hash
data_root=$("$nac_hash" data cifar10)
"$nac_hash" index build "$data_root" --out results/cifar10-index
"$nac_hash" search results/cifar10-index "$data_root"/test/cat/0001.* "$data_root"/test/ship/0001.* -k 5
"$nac_hash" eval --data-root "$data_root" --protocol "${PROTOCOL:-cifar10-nac}" --baselines lsh,itq,phash \
  --out results/default-cifar10.json
