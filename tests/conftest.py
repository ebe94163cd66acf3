"""Shared fixtures: running real multi-process jobs with the project's launchers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for launched workers: quiet TensorFlow, one intra-op thread, the venv first."""
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra)
    return env


def run_launched(cmd: list[str], *, timeout: float = 240, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """Run a launcher command; on failure the test shows its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=worker_env(**env), capture_output=True, text=True, timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc


@pytest.fixture
def launched():
    return run_launched


def in_own_process(body, *args):
    """``body(*args)`` in a fresh (spawned) process; returns its result and raises its exception here.

    ``body`` must be a module-level function. For tests that start Horovod, which must not start in the
    pytest process (see :func:`_horovod_stays_out_of_the_test_process`).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(body, *args).result(timeout=300)


@pytest.fixture(autouse=True)
def _horovod_stays_out_of_the_test_process(request):
    """Fail the test that starts Horovod inside pytest's own process. With horovod.torch and
    horovod.tensorflow both loaded there, an initialized Horovod crashes the interpreter at exit (MPI
    aborts or segfaults after the last test), so the whole run exits non-zero: engines run in workers."""
    yield
    if request.node.get_closest_marker("horovod_in_process"):
        return
    for name in ("horovod.torch", "horovod.tensorflow"):
        module = sys.modules.get(name)
        if module is not None and module.is_initialized():
            module.shutdown()
            pytest.fail(f"{name} was initialized in the pytest process: start Horovod in a subprocess",
                        pytrace=False)


MLP_TRAIN = ["--model", "mlp", "--max-steps", "6", "--threads", "1", "--save-params", "--timing-skip", "1"]


def train_mlp(out: Path, np_: int, n: int, *extra: str, backend: str = "torch", launcher: str = "horovodrun",
              **where) -> dict:
    """``harness train`` of the BN-free mlp for 6 steps under a launcher; returns its summary."""
    import json

    from harness.runtime.launch import launch_command

    argv = [sys.executable, "-m", "harness_cli", "train", "--backend", backend, *MLP_TRAIN, "--per-worker-batch",
            str(n), "--out", str(out), *extra]
    proc = run_launched(launch_command(argv, launcher=launcher, np=np_, **(where or {"hosts": f"localhost:{np_}"})))
    assert proc.returncode == 0, proc.output
    return json.loads((out / "summary.json").read_text())
