#!/usr/bin/env bash
# Fashion-MNIST through the image pipeline against the in-memory arrays, on the demo's recipe
# (resnet-small, --preset fashion-mnist-goyal, 4 epochs, k = 2 under horovodrun, one thread per rank):
#   arrays           --dataset fashion-mnist
#   folder, no aug   the PNG export (lossless), whole 28x28 images, no flips, eval on whole images: the
#                    same pixels as the arrays, normalised by ImageNet's grey constants instead of the
#                    training set's mean and std, in another (seeded) order
#   folder, paper    the papers' input recipe at 28x28: random-resized crops of 8-100%, flips, eval centre 87.5%
# for SEEDS (default "0 1"); writes results/input-pipeline/accuracy.csv. About 4 minutes a run here.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"
SEEDS=${SEEDS:-0 1}
WORK=${WORK:-runs/folder-vs-arrays-$(date +%Y%m%d-%H%M%S)}
OUT=${OUT:-results/input-pipeline}
[ ! -e "$WORK" ] || { echo "folder-vs-arrays: $WORK exists" >&2; exit 2; }
mkdir -p "$WORK" "$OUT"
harness data export fashion-mnist "$WORK/fashion-png" --format png
common=(--np 2 --preset fashion-mnist-goyal --model resnet-small --threads 1 --epochs 4)
folder=(--dataset "$WORK/fashion-png" --image-size 28 --data-workers 1)
echo "variant,seed,world_size,global_batch,epochs,test_accuracy,test_loss,images_per_second,data_wait_share" >"$OUT/accuracy.csv"
for seed in $SEEDS; do
  for variant in arrays folder-no-aug folder-paper; do
    case $variant in
      arrays) extra=(--dataset fashion-mnist) ;;
      folder-no-aug) extra=("${folder[@]}" --min-crop-area 1 --no-flip --eval-crop-fraction 1) ;;
      folder-paper) extra=("${folder[@]}") ;;
    esac
    harness train "${common[@]}" "${extra[@]}" --seed "$seed" --out "$WORK/$variant-s$seed" 2>&1 | grep -E "^test accuracy|error" || true
    python - "$WORK/$variant-s$seed/summary.json" "$variant" "$seed" >>"$OUT/accuracy.csv" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
wait = (s.get("input") or {}).get("data_wait_share")
print(f"{sys.argv[2]},{sys.argv[3]},{s['world_size']},{s['global_batch']},{s['epochs']:.2f},{s['test_accuracy']:.4f},"
      f"{s['test_loss']:.4f},{s['images_per_second']:.0f},{'' if wait is None else f'{wait:.4f}'}")
PY
  done
done
cat "$OUT/accuracy.csv"
