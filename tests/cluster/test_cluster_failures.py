"""A host's link set down, and every process of a host killed, mid-run: the job ends non-zero within 60 s, a
line on rank 0 or from the launcher names the lost host, and the last checkpoint stays intact (and, after the
link failure, ``--resume`` continues to the same parameters as an uninterrupted run).

Which knob ends the job: ``harness train --collective-timeout-s S`` sets ``HOROVOD_GLOO_TIMEOUT_SECONDS`` on
every rank, the time a Gloo collective waits for a peer (Horovod's default 30 s); rank 0 then names the host
from the placement gathered at the start. A killed host closes its ssh session at once, and ssh says so. Under
mpirun (MPI collectives, no such timeout) the cluster's ssh keep-alive (ServerAliveInterval 5, CountMax 3) ends
the remote daemon's session and ssh names the host (``Timeout, server node2 not responding``); mpirun aborts.
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np
import pytest

from harness.runtime.checkpoint import load_checkpoint

HARNESS = [sys.executable, "-m", "harness_cli"]
LONG = ["--model", "mlp", "--dataset", "synthetic", "--threads", "1", "--checkpoint-steps", "20", "--timing-skip", "1"]
# The lines that name a lost host: rank 0's (harness.runtime.faults.describe_lost_peers) or ssh's, via the launcher.
EPOCHS = "100000"  # long enough to be running when the host fails; --max-steps ends the resumed runs
NAMES_HOST = r"lost contact with host {host}\b|Connection to {host} closed|server {host} not responding"


def train_on(cluster, out, *extra: str, launcher: str = "horovodrun") -> list[str]:
    where = ["-H", "node1:1,node2:1", "--controller", "gloo"] if launcher == "horovodrun" else \
        ["--launcher", "mpirun", "--hostfile", cluster.hostfile]
    return [*HARNESS, "train", "--np", "2", *where, f"--launcher-args={cluster.args(launcher)}",
            "--collective-timeout-s", "5", *LONG, "--out", str(out), *extra]


def fail_mid_run(cluster, tmp_path, action: str, launcher: str) -> tuple[float, str, dict]:
    """Start a long run on node1, wait for its first checkpoint, break node2; (seconds to the end, output, meta)."""
    out, log = tmp_path / "run", tmp_path / "run.log"
    long = train_on(cluster, out, "--epochs", EPOCHS, "--max-steps", "100000000", launcher=launcher)
    job = cluster.popen_on("node1", *long, log=log)
    deadline = time.monotonic() + 150
    while not (out / "checkpoint.pkl").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (out / "checkpoint.pkl").exists(), log.read_text()
    time.sleep(1)
    broke = time.monotonic()
    verb = ["link", "--state-dir", str(cluster.state_dir), "node2", "down"] if action == "link" else \
        ["kill", "--state-dir", str(cluster.state_dir), "node2"]
    from tests.cluster.conftest import harness

    assert harness("cluster", *verb).returncode == 0
    try:
        job.wait(timeout=90)
    except Exception:
        job.kill()
        job.wait()
        pytest.fail(f"the job did not end within 90 s of the failure:\n{log.read_text()[-3000:]}")
    ended = time.monotonic() - broke
    output = log.read_text()
    assert job.returncode != 0, output
    meta, state = load_checkpoint(out / "checkpoint.pkl")  # intact: loads and is at a checkpoint step
    assert meta["step"] > 0 and meta["step"] % 20 == 0 and state, meta
    return ended, output, meta


@pytest.mark.parametrize("action,launcher", [("link", "horovodrun"), ("kill", "horovodrun"), ("link", "mpirun")])
def test_host_failure_ends_the_job_naming_the_host(make_cluster, tmp_path, action, launcher):
    cluster = make_cluster()
    ended, output, meta = fail_mid_run(cluster, tmp_path, action, launcher)
    assert ended < 60, f"{ended:.0f} s\n{output[-3000:]}"
    assert re.search(NAMES_HOST.format(host="node2"), output), output[-3000:]
    if (action, launcher) != ("link", "horovodrun"):
        return
    from tests.cluster.conftest import harness

    assert harness("cluster", "link", "--state-dir", str(cluster.state_dir), "node2", "up").returncode == 0
    stop = str(meta["step"] + 4)
    resumed = cluster.on("node1", *train_on(cluster, tmp_path / "run", "--epochs", EPOCHS, "--max-steps", stop,
                                            "--resume", "--save-params"))
    assert resumed.returncode == 0, resumed.output
    straight = cluster.on("node1", *train_on(cluster, tmp_path / "straight", "--epochs", EPOCHS, "--max-steps", stop,
                                             "--save-params"))
    assert straight.returncode == 0, straight.output
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "params.npy"),
                                  np.load(tmp_path / "straight" / "params.npy"))
