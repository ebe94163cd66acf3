"""The Keras backend under real launchers: ranks in sync, k×n ≡ 1×kn, and model.fit with our callbacks."""

import re
import sys

import numpy as np
import pytest

from harness.runtime.launch import launch_command
from tests.conftest import train_mlp

pytestmark = pytest.mark.parallel


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_two_keras_workers_of_n_equal_one_of_2n(tmp_path, launched, optimizer):
    two = train_mlp(tmp_path / "k2", 2, 16, "--set", f"optimizer={optimizer}", backend="keras")
    one = train_mlp(tmp_path / "k1", 1, 32, "--set", f"optimizer={optimizer}", backend="keras")
    assert two["ranks_in_sync"] and two["backend"] == "keras"
    assert two["global_batch"] == one["global_batch"] == 32 and two["peak_lr"] == one["peak_lr"]
    np.testing.assert_allclose(np.load(tmp_path / "k2" / "params.npy"), np.load(tmp_path / "k1" / "params.npy"),
                               rtol=1e-5, atol=1e-5)


def test_keras_under_mpirun_with_accumulation(tmp_path, launched):
    summary = train_mlp(tmp_path / "mpi", 2, 8, "--set", "accumulation_steps=2", launcher="mpirun",
                        hostfile="hostfiles/localhost", backend="keras")
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
