#!/usr/bin/env bash
# make demo: the small ResNet on Fashion-MNIST with Goyal et al.'s recipe (linear scaling, gradual
# warmup), per-worker batch fixed, on k = 1 and k = 2 Horovod workers, then the scaling report.
# `harness train --np k` launches the workers: the console shows rank 0's lines (one per epoch, then the
# summary), every rank's full output goes to OUT/k<k>/logs/rank.<r>.log.
#   BACKEND=torch|keras  EPOCHS=4  WORLD_SIZES="1 2"  OUT=runs/demo  THREADS=1  LAUNCHER=horovodrun|mpirun
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BACKEND=${BACKEND:-torch}
EPOCHS=${EPOCHS:-4}
WORLD_SIZES=${WORLD_SIZES:-1 2}
THREADS=${THREADS:-1}  # the same intra-op threads on every rank, so world sizes compare fairly
LAUNCHER=${LAUNCHER:-horovodrun}
OUT=${OUT:-runs/demo-$BACKEND-$(date +%Y%m%d-%H%M%S)}
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=$THREADS PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"

# TensorFlow's absl prints these (in the launcher, and on rank 0 with --backend keras) before any log level
# applies, and harness prints the launch command (also in OUT/k<k>/logs/launcher.log): nothing else is dropped.
quiet() {
  grep --line-buffered -vE '^harness: launching: |absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|To enable the following instructions' || true
}

[ ! -e "$OUT" ] || { echo "demo: $OUT already exists; set OUT to a new directory" >&2; exit 2; }
runs=()
for k in $WORLD_SIZES; do
  echo "== k=$k workers ($LAUNCHER): $BACKEND, resnet-small, Fashion-MNIST, n=128 per worker, $EPOCHS epochs"
  harness train --np "$k" --launcher "$LAUNCHER" --backend "$BACKEND" --preset fashion-mnist-goyal \
    --epochs "$EPOCHS" --threads "$THREADS" --out "$OUT/k$k" 2>&1 | quiet
  [ -f "$OUT/k$k/summary.json" ] || { echo "demo: the k=$k run failed (see above)" >&2; exit 1; }
  runs+=("$OUT/k$k")
done
harness report "${runs[@]}" --out "$OUT/report"
echo
awk '/^\| *world_size/ {p = 1} p && /^$/ {exit} p' "$OUT/report/report.md"  # the scaling table
echo "report: $OUT/report/report.md (scaling.csv, throughput.png, efficiency.png beside it)"
