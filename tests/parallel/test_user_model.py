"""The user's own model and data through the CLI: ``--model package.module:function``, ``--dataset FILE.npz``."""

import json
import sys

import numpy as np
import pytest

from harness.runtime.launch import launch_command

pytestmark = pytest.mark.parallel


@pytest.fixture
def npz(tmp_path):
    """A small NHWC uint8 dataset of 3-channel 12×12 images, saved as a user would."""
    rng = np.random.default_rng(1)
    y = np.arange(160) % 4
    x = rng.integers(0, 200, size=(160, 12, 12, 3)).astype(np.uint8) + (y * 12).astype(np.uint8)[:, None, None, None]
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x[:128], y_train=y[:128], x_test=x[128:], y_test=y[128:])
    return path


def train_argv(out, *extra):
    return [sys.executable, "-m", "harness_cli", "train", "--dataset", str(extra[0]), "--layout", "NHWC",
            "--per-worker-batch", "16", "--epochs", "2", "--threads", "1", "--timing-skip", "0",
            "--set", "warmup_epochs=1", "--set", "milestones_epochs=[1.5]", "--out", str(out), *extra[1:]]


def test_own_model_and_npz_train_under_horovodrun(tmp_path, npz, launched):
    out = tmp_path / "run"
    argv = train_argv(out, npz, "--model", "tests.helpers.mymodel:build")
    proc = launched(launch_command(argv, launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"]
    assert summary["model"] == "tests.helpers.mymodel:build" and summary["dataset"] == "mine.npz"
    assert summary["steps"] == 2 * 128 // 32
    run = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    assert run["model"] == "tests.helpers.mymodel:build"
    assert summary["model_bytes"] == 4 * (3 * 8 * 9 + 2 * 8 + 8 * 4 + 4)  # conv, BN γ/β, linear


def test_own_keras_model_trains(tmp_path, npz, launched):
    out = tmp_path / "keras"
    argv = train_argv(out, npz, "--backend", "keras", "--model", "tests.helpers.mymodel:build_keras", "--max-steps", "3")
    proc = launched(argv)
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "keras" and summary["steps"] == 3 and np.isfinite(summary["train_loss"])


def test_own_model_in_the_throughput_benchmark(tmp_path, launched):
    out = tmp_path / "tp"
    proc = launched([sys.executable, "-m", "harness_cli", "bench", "throughput", "--model",
                     "tests.helpers.mymodel:build", "--input-shape", "3x16x16", "--num-classes", "5", "--steps", "4",
                     "--batches-per-iter", "2", "--warmup-steps", "1", "--out", str(out)])
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "tests.helpers.mymodel:build"
    assert summary["model_bytes"] == 4 * (3 * 8 * 9 + 2 * 8 + 8 * 5 + 5)


def test_own_model_and_npz_in_the_throughput_benchmark_under_horovodrun(tmp_path, npz, launched):
    out = tmp_path / "tp-npz"
    argv = [sys.executable, "-m", "harness_cli", "bench", "throughput", "--model", "tests.helpers.mymodel:build",
            "--dataset", str(npz), "--layout", "NHWC", "--per-worker-batch", "16", "--steps", "4",
            "--batches-per-iter", "2", "--warmup-steps", "1", "--out", str(out)]
    proc = launched(launch_command(argv, launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "mine.npz" and summary["world_size"] == 2
    assert summary["model_bytes"] == 4 * (3 * 8 * 9 + 2 * 8 + 8 * 4 + 4)  # 3 channels and 4 classes from the file
