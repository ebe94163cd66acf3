"""``harness train --backend torch`` under real launchers: ranks stay in sync, k×n ≡ 1×kn."""

import json
import sys

import numpy as np
import pytest

from harness.runtime.launch import launch_command
from tests.conftest import train_mlp

pytestmark = pytest.mark.parallel
HARNESS = [sys.executable, "-m", "harness_cli", "train"]
# mlp has no BatchNorm, so k workers × n and 1 worker × kn compute the same gradient.


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_two_workers_of_n_equal_one_worker_of_2n(tmp_path, launched, optimizer):
    two = train_mlp(tmp_path / "k2", 2, 16, "--set", f"optimizer={optimizer}")
    one = train_mlp(tmp_path / "k1", 1, 32, "--set", f"optimizer={optimizer}")
    assert two["ranks_in_sync"] and len(two["parameters_sha256_per_rank"]) == 2
    assert (two["global_batch"], one["global_batch"]) == (32, 32) and two["peak_lr"] == one["peak_lr"]
    np.testing.assert_allclose(np.load(tmp_path / "k2" / "params.npy"), np.load(tmp_path / "k1" / "params.npy"),
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.load(tmp_path / "k1" / "params.npy"), 0)


def test_resnet_with_bn_keeps_ranks_identical_and_records_every_rank(tmp_path, launched):
    out = tmp_path / "bn"
    cmd = launch_command([*HARNESS, "--model", "resnet-small", "--max-steps", "4", "--per-worker-batch", "16",
                          "--threads", "1", "--out", str(out), "--set", "accumulation_steps=2"],
                         launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo")
    proc = launched(cmd)
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks_in_sync"] and summary["global_batch"] == 64 and summary["accumulation_steps"] == 2
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert sorted({r["rank"] for r in steps}) == [0, 1] and len(steps) == 8
    assert all(r["world_size"] == 2 for r in records) and all(r["step_time_s"] > 0 for r in steps)
    assert len(summary["step_time_s_per_rank"]) == 2 and 0 < summary["test_accuracy"] <= 1


def test_mpirun_with_hostfile_completes_five_steps(tmp_path, launched):
    cmd = launch_command([*HARNESS, "--model", "mlp", "--max-steps", "5", "--threads", "1", "--out",
                          str(tmp_path / "mpi")], launcher="mpirun", np=2, hostfile="hostfiles/localhost")
    proc = launched(cmd)
    assert proc.returncode == 0, proc.output
    summary = json.loads((tmp_path / "mpi" / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["world_size"] == 2 and summary["ranks_in_sync"]


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_fp16_allreduce_trains_and_stays_close_to_fp32(tmp_path, backend):
    fp16 = train_mlp(tmp_path / "fp16", 2, 16, "--fp16-allreduce", backend=backend)
    fp32 = train_mlp(tmp_path / "fp32", 2, 16, backend=backend)
    assert fp16["ranks_in_sync"] and fp32["ranks_in_sync"] and fp16["global_batch"] == fp32["global_batch"] == 32
    a, b = np.load(tmp_path / "fp16" / "params.npy"), np.load(tmp_path / "fp32" / "params.npy")
    assert not np.array_equal(a, b)  # the compression really ran
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-2)
