#!/usr/bin/env bash
# Allreduce busbw across two emulated hosts whose links are shaped to 0.5, 1 and 2 Gbit/s (tc tbf).
# Needs root, iproute2 and openssh-server. Run from the repository root:  bash results/cluster/measure.sh
# Writes results/cluster/allreduce-shaped.csv (one row per rate, implementation and size).
set -euo pipefail
H=.venv/bin/harness
STATE=/run/lmh-measure
OUT=$(mktemp -d)
trap '$H cluster down --state-dir $STATE --prefix lmhm- >/dev/null; rm -rf "$OUT"' EXIT
for rate in 0.5 1 2; do
  $H cluster up --hosts 2 --rate "$rate" --prefix lmhm- --state-dir $STATE >/dev/null
  $H cluster exec --state-dir $STATE node1 -- $H bench allreduce --np 2 -H node1:1,node2:1 --controller gloo \
    --launcher-args="$(cat $STATE/horovodrun-ssh.args)" --sizes 1MB..64MB --factor 4 --iters 10 --warmup 3 \
    --out "$OUT/rate$rate" >/dev/null 2>&1
  $H cluster down --state-dir $STATE --prefix lmhm- >/dev/null
done
.venv/bin/python - "$OUT" results/cluster/allreduce-shaped.csv <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
rows = []
for path in sorted(Path(sys.argv[1]).glob("rate*/summary.json")):
    rate = float(path.parent.name.removeprefix("rate"))
    for r in json.loads(path.read_text())["results"]:
        line = rate / 8  # GB/s
        rows.append({"rate_gbit": rate, "line_rate_gbps": line, "impl": r["impl"], "size_bytes": r["size_bytes"],
                     "time_s": r["time_s"], "algbw_gbps": r["algbw_gbps"], "busbw_gbps": r["busbw_gbps"],
                     "busbw_over_line_rate": r["busbw_gbps"] / line})
pd.DataFrame(rows).to_csv(sys.argv[2], index=False, float_format="%.4g")
print(pd.DataFrame(rows).to_string(index=False))
PY
