#!/usr/bin/env bash
# Measured runs for the cost model's validation (issue 15). Run in a quiet window: it takes timings.
#
#   bash results/costmodel/measure.sh            # k = 1 → 2 on this host, then 2 and 3 emulated hosts
#   HOSTS="" bash results/costmodel/measure.sh   # this host only (no `harness cluster`)
#
# Writes runs under $OUT and results/costmodel/measured.csv: one row per (setup, k) with the measured
# weak-scaling efficiency, the cost model's prediction (calibrated on the same setup: compute and σ
# from the k = 1 run, readiness from its backward hooks, α and B fitted to Horovod's allreduce at k)
# and the error in points. Knobs: MODEL (resnet-small), N (per-worker batch, 32), STEPS (100),
# HOSTS ("2 3"), RATES (Gbit/s per host link, "1 0.3 0.1": resnet-small's 0.3 MiB of gradients take
# 5-50 ms there, a large part of its CPU step), OUT (runs/costmodel-DATE).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
MODEL=${MODEL:-resnet-small}
N=${N:-32}
STEPS=${STEPS:-100}
HOSTS=${HOSTS-"2 3"}
RATES=${RATES:-"1 0.3 0.1"}
OUT=${OUT:-runs/costmodel-$(date +%Y%m%d-%H%M%S)}
STATE=${STATE:-/tmp/harness-costmodel-cluster}
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"
[ ! -e "$OUT" ] || { echo "measure: $OUT exists; set OUT to a new directory" >&2; exit 2; }
TP=(bench throughput --model "$MODEL" --per-worker-batch "$N" --warmup-steps 10 --steps "$STEPS" --peers plain
    --batches-per-iter 10 --threads 1)
AR=(bench allreduce --sizes 1KB..16MB --iters 20)

# 1. One host: k = 1 and 2 (two ranks share this machine's cores), allreduce, backward trace at k = 1.
harness sweep --world-sizes 1,2 --out "$OUT/local/throughput" -- "${TP[@]}"
harness sweep --world-sizes 1,2 --out "$OUT/local/allreduce" -- "${AR[@]}"
python -m benchmarks.layer_trace --model "$MODEL" --per-worker-batch "$N" --out "$OUT/local/throughput/k1/layers.json"
harness report "$OUT"/local/throughput/k* "$OUT"/local/allreduce/k* --out "$OUT/local/report"

# 2. Emulated hosts (issue 13's `harness cluster`): H hosts × 1 rank, each host's link shaped to R Gbit/s.
#    The launch runs from node1 as from a login node; `harness cluster up` prints the exact commands
#    (also in $STATE/commands.txt) if these flags ever change.
for H in $HOSTS; do
  for R in $RATES; do
    D="$OUT/h$H-r$R"
    harness cluster up --hosts "$H" --rate "$R" --state-dir "$STATE"
    ARGS=$(cat "$STATE/horovodrun-ssh.args")
    for what in throughput allreduce; do
      if [ "$what" = throughput ]; then CMD=("${TP[@]}"); else CMD=("${AR[@]}"); fi
      harness cluster exec --state-dir "$STATE" node1 -- env OMP_NUM_THREADS=1 bash -c \
        "cd '$ROOT' && harness sweep --world-sizes $H --hostfile '$STATE/hostfile' --launcher-args '$ARGS' \
         --out '$D/$what' -- ${CMD[*]}"
    done
    harness cluster down --state-dir "$STATE"
    harness report "$OUT/local/throughput/k1" "$D/throughput/k$H" "$D/allreduce/k$H" --out "$D/report"
  done
done

# 3. One CSV of measured vs predicted, every setup.
python - "$OUT" results/costmodel/measured.csv <<'PY'
import sys
from pathlib import Path

import pandas as pd

out, csv = Path(sys.argv[1]), Path(sys.argv[2])
frames = []
for predicted in sorted(out.glob("*/report/predicted.csv")):
    setup = predicted.parent.parent.name
    table = pd.read_csv(predicted)
    table.insert(0, "setup", setup)
    table["error_points"] = 100 * (table["predicted_efficiency"] - table["measured_efficiency"])
    frames.append(table[table["world_size"] > 1])
result = pd.concat(frames, ignore_index=True)
result.to_csv(csv, index=False)
print(result.to_markdown(index=False, floatfmt=".4g"))
print(f"mean absolute error: {result['error_points'].abs().mean():.2f} points | {csv}")
PY
