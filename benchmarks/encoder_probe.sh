#!/usr/bin/env bash
# Encoder size at equal CPU time, through the default model's schedule: cnn_small of WIDTH channels and DEPTH
# convolutions per stage, trained from scratch at p = 0.25 (the CPU recipe, batch 500) for LEG, then from that
# encoder at p = 0.4 (batch 250, lr 0.3, no warm-up) for LEG more, then the ITQ rotation of the logits and
# `nac-hash eval` (cifar10-nac, mAP@all, 10,000 queries): the second leg is benchmarks/leg_probe.sh's. Run one
# encoder per core side by side (CORE pins it there, with one thread) so both see the same CPU.
#
# Usage: benchmarks/encoder_probe.sh WIDTH DEPTH [LEG (default 55m)] [CORE] [RESULTS_DIR (default
#        benchmarks/results/probes)]
set -euo pipefail
width=$1 depth=$2
leg=${3:-55m}
core=${4:-}
results=${5:-benchmarks/results/probes}
pin=()
if [[ -n $core ]]; then
  pin=(taskset -c "$core")
  export OMP_NUM_THREADS=1
fi
name="encoder-w$width-d$depth"
encoder=(--arch cnn_small --width "$width" --depth "$depth")
"${pin[@]}" nac-hash train "${encoder[@]}" --batch-size 500 --flip-probability 0.25 --time-budget "$leg" \
  --out-dir "runs/$name-a"
"$(dirname "$0")/leg_probe.sh" "$name-b" "runs/$name-a/model.safetensors" "$leg" "$core" "${encoder[@]}" \
  --flip-probability 0.4 --batch-size 250 --lr 0.3
cp "runs/$name-b-itq-eval.json" "$results/$name-two-legs-$leg-each.json"
