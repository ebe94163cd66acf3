"""An elastic drill on 3 emulated hosts: node3 leaves mid-run and comes back; then the report.

    .venv/bin/python results/elastic/drill.py [--out runs/elastic-drill] [--epochs 4]

Needs root (``harness cluster``). Makes the cluster in its own state directory, trains the small
ResNet on Fashion-MNIST with ``harness train --elastic`` from node1, marks node3 down once a quarter
of the run's updates at k = 3 are recorded, marks it up again after as many more at k = 2, waits for
the end, writes ``harness report`` into OUT/report, removes the cluster and prints the phases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, "-m", "harness_cli"]


def harness(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], cwd=ROOT, check=True, **kw)


def updates_at(out: Path, k: int) -> int:
    path = out / "records.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line) for line in path.read_text().splitlines()]
    return sum(1 for r in steps if r["kind"] == "step" and r["world_size"] == k and r["rank"] == 0)


def wait(job: subprocess.Popen, what: str, ready) -> None:
    while not ready():
        if job.poll() is not None:
            sys.exit(f"drill: the job ended before {what}")
        time.sleep(0.5)
    print(f"drill: {what} at {time.strftime('%H:%M:%S')}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "elastic-drill")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--state-dir", default="/tmp/harness-elastic-drill")
    args = parser.parse_args()
    state = args.state_dir
    harness("cluster", "up", "--hosts", "3", "--state-dir", state, "--prefix", "lmhe-", "--subnet", "10.213.79.0/24")
    try:
        ssh = Path(state, "horovodrun-ssh.args").read_text().strip()
        argv = [*HARNESS, "train", "--elastic", "--np", "3", "--min-workers", "2", "--max-workers", "3",
                "--host-discovery-script", f"{state}/discover-hosts.sh", f"--launcher-args={ssh}",
                "--collective-timeout-s", "30", "--model", "resnet-small", "--per-worker-batch", "32",
                "--epochs", str(args.epochs), "--threads", "1", "--commit-steps", "20", "--out", str(args.out)]
        log = open(args.out.parent / f"{args.out.name}.log", "w")
        job = subprocess.Popen([*HARNESS, "cluster", "exec", "--state-dir", state, "node1", "--", *argv], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        quarter = args.epochs * (60000 // 96) // 4
        wait(job, f"{quarter} updates at k = 3", lambda: updates_at(args.out, 3) >= quarter)
        harness("cluster", "mark", "--state-dir", state, "node3", "down")
        wait(job, f"{quarter} updates at k = 2", lambda: updates_at(args.out, 2) >= quarter)
        harness("cluster", "mark", "--state-dir", state, "node3", "up")
        if job.wait() != 0:
            sys.exit(f"drill: the job failed (exit {job.returncode}); see {log.name}")
    finally:
        harness("cluster", "down", "--state-dir", state, "--prefix", "lmhe-")
    harness("report", str(args.out), "--out", str(args.out / "report"), "--overwrite")
    print((args.out / "report" / "phases.csv").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
