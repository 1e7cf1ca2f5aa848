#!/usr/bin/env bash
# Every learner at equal CPU time: NAC, SimCLR, Deep InfoMax and AET train one after another on the cifar10-nac
# training split with the same encoder (cnn_small) and recipe, each for BUDGET on the same CPU cores, then one
# `nac-hash bench map` run scores them beside LSH, ITQ and pHash, with float features and linear accuracy.
# A run that stops resumes where it was (its clock is saved with its checkpoints); a finished one is skipped.
#
# Usage: benchmarks/learners.sh [BUDGET (default 30m)] [CPUS (taskset list, default: all)] [OUT (default
#        benchmarks/results/learners)]
set -euo pipefail
budget=${1:-30m}
cpus=${2:-}
out=${3:-benchmarks/results/learners}
pin=()
if [[ -n $cpus ]]; then
  pin=(taskset -c "$cpus")
  threads=$(( $(tr ',' '\n' <<<"$cpus" | wc -l) ))
  export OMP_NUM_THREADS=$threads
fi
methods=(nac simclr dim aet)
checkpoints=()
for method in "${methods[@]}"; do
  run=runs/learners-$budget/$method
  [[ -f $run/model.safetensors ]] || \
    "${pin[@]}" nac-hash train --method "$method" --arch cnn_small --time-budget "$budget" --out-dir "$run"
  checkpoints+=(--checkpoint "$method=$run/model.safetensors")
done
"${pin[@]}" nac-hash bench map --methods "$(IFS=,; echo "${methods[*]}"),lsh,itq,phash" "${checkpoints[@]}" \
  --features --linear --out "$out"
