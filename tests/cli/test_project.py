"""``harness project``: the table, --json, and bad input."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = ["project", "--model-bytes", "98MB", "--compute-s", "0.25", "--gpus-per-node", "8", "--inter-gbps", "50",
        "--intra-gbps", "160", "--algorithm", "hierarchical"]


def harness(*args):
    return subprocess.run([sys.executable, "-m", "harness_cli", *args], cwd=ROOT, capture_output=True, text=True)


def test_json_gives_one_object_per_world_size():
    proc = harness(*BASE, "--world-sizes", "8,16,32,64,128,256", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["world_size"] for r in rows] == [8, 16, 32, 64, 128, 256]
    assert rows[0]["efficiency"] == 1.0 and all(0 < r["efficiency"] <= 1 for r in rows)
    assert all(b["step_time_s"] >= a["step_time_s"] for a, b in zip(rows, rows[1:]))
    assert [r["nodes"] for r in rows] == [1, 2, 4, 8, 16, 32]


def test_table_names_the_baseline():
    proc = harness(*BASE)
    assert proc.returncode == 0 and "efficiency relative to k = 8" in proc.stdout


def test_bad_input_is_one_line_exit_2():
    for args in (["--model-bytes", "lots"], ["--inter-gbps", "0"], ["--world-sizes", "8,x"], ["--algorithm", "tree"]):
        merged = BASE + args
        proc = harness(*merged)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
