#!/usr/bin/env bash
# make demo: the small ResNet on Fashion-MNIST with Goyal et al.'s recipe (linear scaling, gradual
# warmup), per-worker batch fixed, on k = 1 and k = 2 Horovod workers, then the scaling report.
#   BACKEND=torch|keras  EPOCHS=4  WORLD_SIZES="1 2"  OUT=runs/demo  THREADS=1
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BACKEND=${BACKEND:-torch}
EPOCHS=${EPOCHS:-4}
WORLD_SIZES=${WORLD_SIZES:-1 2}
THREADS=${THREADS:-1}  # the same intra-op threads on every rank, so world sizes compare fairly
OUT=${OUT:-runs/demo-$BACKEND-$(date +%Y%m%d-%H%M%S)}
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=$THREADS PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"

# TensorFlow's absl prints these before any log level applies; nothing else is dropped.
quiet() { grep -vE 'absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|To enable the following instructions' || true; }

[ ! -e "$OUT" ] || { echo "demo: $OUT already exists; set OUT to a new directory" >&2; exit 2; }
runs=()
for k in $WORLD_SIZES; do
  echo "== k=$k workers: $BACKEND, resnet-small, Fashion-MNIST, n=128 per worker, $EPOCHS epochs"
  horovodrun -np "$k" -H "localhost:$k" harness train --backend "$BACKEND" --preset fashion-mnist-goyal \
    --epochs "$EPOCHS" --threads "$THREADS" --out "$OUT/k$k" 2>&1 | quiet
  [ -f "$OUT/k$k/summary.json" ] || { echo "demo: the k=$k run failed (see above)" >&2; exit 1; }
  runs+=("$OUT/k$k")
done
harness report "${runs[@]}" --out "$OUT/report"
echo
awk '/^\| *world_size/ {p = 1} p && /^$/ {exit} p' "$OUT/report/report.md"  # the scaling table
echo "report: $OUT/report/report.md (scaling.csv, throughput.png, efficiency.png beside it)"
