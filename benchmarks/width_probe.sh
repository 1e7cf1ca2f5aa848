#!/usr/bin/env bash
# Encoder width at equal CPU time, through the default model's schedule: cnn_small of WIDTH trained from scratch
# at p = 0.25 (the CPU recipe, batch 500) for LEG, then from that encoder at p = 0.4 (batch 250, lr 0.3, no
# warm-up) for LEG more, then the ITQ rotation of the logits and `nac-hash eval` (cifar10-nac, mAP@all, 10,000
# queries). Run one width per core side by side (CORE pins it there, with one thread) so both see the same CPU.
#
# Usage: benchmarks/width_probe.sh WIDTH [LEG (default 55m)] [CORE] [RESULTS_DIR (default benchmarks/results/probes)]
set -euo pipefail
width=$1
leg=${2:-55m}
results=${4:-benchmarks/results/probes}
pin=()
if [[ -n ${3:-} ]]; then
  pin=(taskset -c "$3")
  export OMP_NUM_THREADS=1
fi
run="runs/width-$width"
"${pin[@]}" nac-hash train --arch cnn_small --width "$width" --batch-size 500 --flip-probability 0.25 \
  --time-budget "$leg" --out-dir "$run-a"
"${pin[@]}" nac-hash train --arch cnn_small --width "$width" --init-from "$run-a/model.safetensors" \
  --flip-probability 0.4 --batch-size 250 --lr 0.3 --warmup-epochs 0 --time-budget "$leg" --out-dir "$run-b"
"${pin[@]}" nac-hash export "$run-b/model.safetensors" --out "$run-itq.safetensors" --itq
"${pin[@]}" nac-hash eval "$run-itq.safetensors" --out "$results/width-$width-two-legs-$leg-each.json"
