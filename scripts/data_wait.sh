#!/usr/bin/env bash
# Data wait against the pipeline's headroom: one rank (k = 1), one compute thread, one decode worker, on
# ImageNet-like JPEGs (harness data photos), for models and crop sizes whose compute rate ranges from
# above the pipeline's to well below it. Each run trains MAX_STEPS steps of n = 32 inside the first epoch
# (no epoch boundary: the pipeline prefetches within an epoch), and its summary gives the pipeline's
# images/s (worker time), the compute's (step time) and the data-wait share of step time after the
# start-up steps. Writes results/input-pipeline/data-wait-2core.csv. About 3 minutes here.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"
WORK=${WORK:-runs/data-wait-$(date +%Y%m%d-%H%M%S)}
OUT=${OUT:-results/input-pipeline}
MAX_STEPS=${MAX_STEPS:-80}
CONFIGS=${CONFIGS:-"mlp:224 mlp:192 mlp:160 mlp:128 resnet-small:64 resnet-small:48 resnet-small:32"}
[ ! -e "$WORK" ] || { echo "data-wait: $WORK exists" >&2; exit 2; }
mkdir -p "$WORK" "$OUT"
harness data photos "$WORK/photos" --classes 8 --images-per-class 384 --val-per-class 4
echo "model,image_size,jpeg_decoder,pipeline_images_per_s,compute_images_per_s,pipeline_over_compute,data_wait_share,input_bound" \
  >"$OUT/data-wait-2core.csv"
for config in $CONFIGS; do
  model=${config%%:*} size=${config##*:}
  harness train --backend torch --model "$model" --dataset "$WORK/photos" --image-size "$size" --threads 1 \
    --data-workers 1 --per-worker-batch 32 --epochs 4 --max-steps "$MAX_STEPS" --test-size 32 \
    --out "$WORK/$model-$size" 2>&1 | grep -E "^test accuracy|error" || true
  python - "$WORK/$model-$size/summary.json" "$model" "$size" >>"$OUT/data-wait-2core.csv" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["input"]
pipe, comp = s["pipeline_images_per_s_per_rank"], s["compute_images_per_s_per_rank"]
print(f"{sys.argv[2]},{sys.argv[3]},window,{pipe:.0f},{comp:.0f},{pipe / comp:.2f},{s['data_wait_share']:.4f},"
      f"{str(s['input_bound']).lower()}")
PY
done
cat "$OUT/data-wait-2core.csv"
