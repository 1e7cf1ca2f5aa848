#!/usr/bin/env bash
# One training leg from a trained encoder, the way the default model's p = 0.4 legs were trained (no warm-up,
# the cosine decay over BUDGET), then the ITQ rotation of the logits and `nac-hash eval` (the protocol the
# checkpoint records, all its queries). A probe changes one setting of the leg through the extra arguments;
# run two probes side by side, one per core (CORE pins it there with one thread; "" leaves it unpinned), so both
# see the same CPU. Writes runs/NAME, runs/NAME-itq.safetensors and runs/NAME-itq-eval.json.
#
# Usage: benchmarks/leg_probe.sh NAME INIT BUDGET CORE [nac-hash train arguments...]
# e.g.   benchmarks/leg_probe.sh probe-b1000 runs/p04-leg7/model.safetensors 50m 1 --flip-probability 0.4 \
#          --batch-size 1000 --lr 0.6
set -euo pipefail
name=$1 init=$2 budget=$3 core=$4
shift 4
pin=()
if [[ -n $core ]]; then
  pin=(taskset -c "$core")
  export OMP_NUM_THREADS=1
fi
"${pin[@]}" nac-hash train --init-from "$init" --warmup-epochs 0 --time-budget "$budget" --out-dir "runs/$name" "$@"
"${pin[@]}" nac-hash export "runs/$name/model.safetensors" --out "runs/$name-itq.safetensors" --itq
"${pin[@]}" nac-hash eval "runs/$name-itq.safetensors" --out "runs/$name-itq-eval.json"
