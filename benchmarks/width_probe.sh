#!/usr/bin/env bash
# Encoder width at equal CPU time, through the default model's schedule: cnn_small of WIDTH trained from scratch
# at p = 0.25 (the CPU recipe, batch 500) for LEG, then from that encoder at p = 0.4 (batch 250, lr 0.3, no
# warm-up) for LEG more, then the ITQ rotation of the logits and `nac-hash eval` (cifar10-nac, mAP@all, 10,000
# queries): the second leg is benchmarks/leg_probe.sh's. Run one width per core side by side (CORE pins it there,
# with one thread) so both see the same CPU.
#
# Usage: benchmarks/width_probe.sh WIDTH [LEG (default 55m)] [CORE] [RESULTS_DIR (default benchmarks/results/probes)]
set -euo pipefail
width=$1
leg=${2:-55m}
results=${4:-benchmarks/results/probes}
core=${3:-}
pin=()
if [[ -n $core ]]; then
  pin=(taskset -c "$core")
  export OMP_NUM_THREADS=1
fi
run="runs/width-$width"
"${pin[@]}" nac-hash train --arch cnn_small --width "$width" --batch-size 500 --flip-probability 0.25 \
  --time-budget "$leg" --out-dir "$run-a"
"$(dirname "$0")/leg_probe.sh" "width-$width-b" "$run-a/model.safetensors" "$leg" "$core" --arch cnn_small \
  --width "$width" --flip-probability 0.4 --batch-size 250 --lr 0.3
cp "$run-b-itq-eval.json" "$results/width-$width-two-legs-$leg-each.json"
