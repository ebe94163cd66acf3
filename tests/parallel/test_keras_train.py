"""The Keras backend under real launchers: ranks in sync, k×n ≡ 1×kn, and model.fit with our callbacks."""

import json
import re
import sys

import numpy as np
import pytest

from harness_cli.launch import launch_command

pytestmark = pytest.mark.parallel
HARNESS = [sys.executable, "-m", "harness_cli", "train", "--backend", "keras"]
MLP = ["--model", "mlp", "--max-steps", "6", "--threads", "1", "--save-params", "--timing-skip", "1"]


def _train(launched, out, np_, n, *extra, launcher="horovodrun", **where):
    cmd = launch_command([*HARNESS, *MLP, "--per-worker-batch", str(n), "--out", str(out), *extra],
                         launcher=launcher, np=np_, **(where or {"hosts": f"localhost:{np_}"}))
    proc = launched(cmd)
    assert proc.returncode == 0, proc.output
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_two_keras_workers_of_n_equal_one_of_2n(tmp_path, launched, optimizer):
    two = _train(launched, tmp_path / "k2", 2, 16, "--set", f"optimizer={optimizer}")
    one = _train(launched, tmp_path / "k1", 1, 32, "--set", f"optimizer={optimizer}")
    assert two["ranks_in_sync"] and two["backend"] == "keras"
    np.testing.assert_allclose(np.load(tmp_path / "k2" / "params.npy"), np.load(tmp_path / "k1" / "params.npy"),
                               rtol=1e-5, atol=1e-5)


def test_keras_under_mpirun_with_accumulation(tmp_path, launched):
    summary = _train(launched, tmp_path / "mpi", 2, 8, "--set", "accumulation_steps=2", launcher="mpirun",
                     hostfile="hostfiles/localhost")
    assert summary["ranks_in_sync"] and summary["global_batch"] == 32 and summary["steps"] == 6


def test_model_fit_with_broadcast_and_metric_average_callbacks(tmp_path, launched):
    cmd = launch_command([sys.executable, "tests/parallel/keras_fit_worker.py"], launcher="horovodrun", np=2,
                         hosts="localhost:2")
    proc = launched(cmd, FIT_LOG=str(tmp_path / "fit.csv"))
    assert proc.returncode == 0, proc.output
    lines = re.findall(r"rank (\d) weights (\w+) loss ([\d.]+)", proc.output)
    assert sorted(r for r, _, _ in lines) == ["0", "1"], proc.output
    assert lines[0][1] == lines[1][1] and lines[0][2] == lines[1][2]  # same weights, averaged loss
    assert (tmp_path / "fit.csv").read_text().count("\n") == 3  # header + 2 epochs, written by rank 0 only
