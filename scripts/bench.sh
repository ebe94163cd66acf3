#!/usr/bin/env bash
# make bench: on this machine, k = 1 and 2 workers: synthetic-data throughput, allreduce busbw through
# Horovod with torch.distributed (Gloo) as the peer, then the report with the cost model's projection.
#   BACKEND=torch|keras  MODEL=resnet-small  WORLD_SIZES=1,2  OUT=runs/bench-...  SIZES=1KB..256MB
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BACKEND=${BACKEND:-torch}
MODEL=${MODEL:-resnet-small}
WORLD_SIZES=${WORLD_SIZES:-1,2}
SIZES=${SIZES:-1KB..256MB}
OUT=${OUT:-runs/bench-$BACKEND-$(date +%Y%m%d-%H%M%S)}
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"
quiet() { grep -vE 'absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|To enable the following instructions' || true; }

[ ! -e "$OUT" ] || { echo "bench: $OUT already exists; set OUT to a new directory" >&2; exit 2; }
start=$(date +%s)
harness sweep --world-sizes "$WORLD_SIZES" --out "$OUT/throughput" -- bench throughput --backend "$BACKEND" \
  --model "$MODEL" --per-worker-batch 32 --warmup-steps 10 --steps 100 --batches-per-iter 10 --threads 1 2>&1 | quiet
harness sweep --world-sizes "$WORLD_SIZES" --out "$OUT/allreduce" -- bench allreduce --sizes "$SIZES" 2>&1 | quiet
harness report "$OUT"/throughput/k* "$OUT"/allreduce/k* --out "$OUT/report"
echo
sed -n '/^## Measured vs predicted/,$p' "$OUT/report/report.md"
echo "bench took $(( $(date +%s) - start )) s; report: $OUT/report/report.md"
