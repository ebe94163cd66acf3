"""``harness sweep`` for real on localhost: world sizes 1 and 2, then the report; a failing size is named."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, worker_env

pytestmark = pytest.mark.parallel


def harness(*args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "harness_cli", *args], cwd=ROOT, env=worker_env(),
                          capture_output=True, text=True, timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc


def test_sweep_throughput_and_allreduce_then_report(tmp_path):
    tp = harness("sweep", "--world-sizes", "1,2", "--out", str(tmp_path / "tp"), "--",
                 "bench", "throughput", "--model", "mlp", "--steps", "6", "--batches-per-iter", "3", "--warmup-steps", "1")
    assert tp.returncode == 0, tp.output
    ar = harness("sweep", "--world-sizes", "1,2", "--launcher", "mpirun", "--out", str(tmp_path / "ar"), "--",
                 "bench", "allreduce", "--sizes", "64KB..16MB", "--factor", "16", "--iters", "3")
    assert ar.returncode == 0, ar.output
    for k in (1, 2):
        summary = json.loads((tmp_path / "tp" / f"k{k}" / "summary.json").read_text())
        assert summary["world_size"] == k and len(summary["step_time_s_per_rank"]) == k
        assert summary["horovod"]["fusion_threshold_bytes"] == 128 * 2**20 and summary["images_per_second"] > 0
        allreduce = json.loads((tmp_path / "ar" / f"k{k}" / "summary.json").read_text())
        assert {r["impl"] for r in allreduce["results"]} == {"horovod", "torch.distributed-gloo"}
        assert allreduce["controller"] == "mpi" and allreduce["device"] == "cpu"  # no GPU: the tensors training uses
        assert {r["device"] for r in allreduce["results"]} == {"cpu"}
    runs = [str(tmp_path / d / f"k{k}") for d in ("tp", "ar") for k in (1, 2)]
    report = harness("report", *runs, "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.output
    assert pd.read_csv(tmp_path / "report" / "scaling.csv")["world_size"].tolist() == [1, 2]
    assert (tmp_path / "report" / "predicted.csv").exists() and (tmp_path / "report" / "projection.csv").exists()


def test_sweep_names_the_world_size_that_failed(tmp_path):
    proc = harness("sweep", "--world-sizes", "1,2", "-H", "localhost:1", "--out", str(tmp_path / "s"), "--",
                   "bench", "allreduce", "--sizes", "1KB", "--no-peer")
    assert proc.returncode == 1
    assert "sweep stopped: world size 2 failed" in proc.stderr and "finished: 1" in proc.stderr


@pytest.mark.parametrize("args, fragment", [
    (["--world-sizes", "1,x", "--", "bench", "allreduce"], "--world-sizes"),
    (["--world-sizes", "1,3", "--hostfile", "hostfiles/localhost", "--", "bench", "allreduce"], "exceeds the 2 slots"),
    (["--world-sizes", "1", "--", "hostfile", "check", "x"], "needs a command"),
    (["--world-sizes", "1", "--", "bench", "allreduce", "--out", "x"], "give --out to sweep"),
])
def test_sweep_usage_errors(tmp_path, args, fragment):
    proc = harness("sweep", "--out", str(tmp_path / "s"), *args)
    assert proc.returncode == 2 and fragment in proc.stderr, proc.output
