#!/usr/bin/env bash
# make bench-peers: LARS step vs timm's Lars and torch's SGD, each at its own default and at foreach=True;
# harness vs a bare Horovod loop at k = 1; weak-scaling efficiency k = 1 -> 2 of harness, bare Horovod and
# torch DDP. Alternating repetitions. Arguments pass through: `bash scripts/bench_peers.sh --skip throughput`
# times the optimizer steps alone.
#   REPS=5  OUT=runs/bench-peers-...  (more flags: .venv/bin/python -m benchmarks.bench_peers --help)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PATH="$ROOT/.venv/bin:$PATH"
.venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('timm') is None)" ||
  .venv/bin/pip install -q --no-deps -r requirements/bench.txt
exec .venv/bin/python -m benchmarks.bench_peers --reps "${REPS:-5}" --out "${OUT:-runs/bench-peers-$(date +%Y%m%d-%H%M%S)}" "$@"
