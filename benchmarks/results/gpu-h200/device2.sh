#!/usr/bin/env bash
# nac-hash on the lent GPU: a folder's default recipe (cnn_small) and the same recipe with VGG16-BN, 1 minute each.
set -x
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devcarry/nac_hash-*.whl || exit 1
export PYTHONPATH=/tmp/site
R=$(pwd)
cd /tmp
for arch in default vgg16_bn; do
  extra=(); [ $arch = default ] || extra=(--arch $arch)
  python3 -m nac_hash.cli train --dataset folder --data-root $R/.devcarry/digits --time-budget 1m --device cuda \
    --out-dir /tmp/runs/digits-$arch --no-resume "${extra[@]}" 2>&1 | tr "\r" "\n" | grep -v "it/s\|step/s" | tail -6
  python3 -m nac_hash.cli eval /tmp/runs/digits-$arch/model.safetensors --out $OUT/digits-cuda-$arch.json 2>&1 | tail -2
done
