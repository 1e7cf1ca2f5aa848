#!/usr/bin/env bash
# The CPU-quality issue's sweep: every configuration trains for the same CPU time on cifar10-nac (split seed 0),
# each changing one setting of the CPU recipe (cnn_small, width 32, depth 1, p = 0.25, batch 500, lr 3.0), and
# is scored by `nac-hash eval` (mAP@all, 10,000 queries). Runs resume where they stopped; scored ones are skipped.
#
# Usage: benchmarks/budget_sweep.sh [BUDGET (default 10m)] [RESULTS_DIR (default benchmarks/results/budget-sweep)]
#        [TRAIN_OPTION ...]   (more options of every run, e.g. --dataset folder --data-root DIR; eval follows them)
# SWEEP_CONFIGS=recipe,p-0.1 runs only the configurations named.
set -euo pipefail
budget=${1:-10m}
results=${2:-benchmarks/results/budget-sweep}
shift $(( $# < 2 ? $# : 2 ))
extra=("$@")
configs=(
  "recipe:"
  "width-64:--width 64"
  "depth-2:--depth 2"
  "p-0.1:--flip-probability 0.1"
  "batch-250:--batch-size 250"
  "lr-1.5:--lr 1.5"
)
mkdir -p "$results"
for config in "${configs[@]}"; do
  name=${config%%:*}
  [[ -z ${SWEEP_CONFIGS:-} || ,$SWEEP_CONFIGS, == *,$name,* ]] || continue
  [[ -f $results/$name.json ]] && continue
  # shellcheck disable=SC2086  # the options are meant to split into words
  nac-hash train --arch cnn_small --time-budget "$budget" --out-dir "runs/sweep-$budget/$name" ${config#*:} \
    "${extra[@]}"
  nac-hash eval "runs/sweep-$budget/$name/model.safetensors" --out "$results/$name.json"
done
python - "$results" <<'PY'
import json, sys
from pathlib import Path
rows = []
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    if path.name == "summary.json":
        continue
    result = json.loads(path.read_text())
    scores = result["methods"]["nac"]
    rows.append({"config": path.stem, "command": result["checkpoint"]["training_command"],
                 "epochs": result["checkpoint"]["epochs_completed"], "map_all": round(scores["map_all"], 4),
                 "map@1000": round(scores["map@1000"], 4), "distinct_codes": scores["distinct_codes"]})
    print(f"{path.stem:>10}  epochs {rows[-1]['epochs']:>5}  mAP@all {rows[-1]['map_all']:.4f}  "
          f"distinct codes {rows[-1]['distinct_codes']:,}")
(Path(sys.argv[1]) / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
PY
