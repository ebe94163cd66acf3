"""``harness cluster up|status|down``: root needed (one line, exit 2), idempotent ``up``, hosts with their own
names and addresses, and ``down`` after a killed ``up`` leaves no namespace, veth, bridge, sshd or file."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.cluster.conftest import PREFIX, ROOT, SUBNET, Cluster, harness, worker_env


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux) to drop root")
def test_up_without_root_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "harness_cli", "cluster", "up", "--hosts", "2", "--state-dir", str(tmp_path / "s")],
                          cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "harness: error: harness cluster needs root (network namespaces, veths, sshd); run it as root"], proc.stderr
    assert not (tmp_path / "s").exists()


def test_hosts_have_their_names_addresses_and_up_is_idempotent(cluster, tmp_path):
    status = harness("cluster", "status", "--json", "--state-dir", str(cluster.state_dir))
    assert status.returncode == 0, status.output
    hosts = json.loads(status.stdout)["hosts"]
    assert [(h["host"], h["hostname"], h["address"], h["healthy"]) for h in hosts] == [
        ("node1", "node1", "10.213.78.1", True), ("node2", "node2", "10.213.78.2", True)]
    seen = cluster.on("node2", "sh", "-c", "hostname; ip -o -4 addr show dev eth0; getent hosts node1")
    assert seen.returncode == 0 and seen.stdout.split()[0] == "node2", seen.output
    assert "10.213.78.2/24" in seen.stdout and "10.213.78.1" in seen.stdout
    holders = cluster.state["holders"]
    again = cluster.up()  # the same spec: nothing changes
    assert again.returncode == 0 and cluster.state["holders"] == holders, again.output
    other = harness("cluster", "up", "--hosts", "3", "--prefix", PREFIX, "--state-dir", str(cluster.state_dir))
    assert other.returncode == 2 and "a different cluster is up" in other.stderr, other.output
    assert (cluster.state_dir / "hostfile").read_text() == "node1 slots=1\nnode2 slots=1\n"
    assert (cluster.state_dir / "hosts").read_text() == "node1:1,node2:1\n"


def test_down_after_a_killed_up_leaves_nothing(tmp_path):
    cluster = Cluster(tmp_path / "state", hosts=3, prefix="lmhk-")
    state = cluster.state_dir / "state.json"
    up = subprocess.Popen([sys.executable, "-m", "harness_cli", "cluster", "up", "--hosts", "3", "--prefix", "lmhk-",
                           "--subnet", SUBNET, "--state-dir", str(cluster.state_dir)], cwd=ROOT, env=worker_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and up.poll() is None:  # kill it once some hosts are running
        if state.exists() and len(json.loads(state.read_text() or "{}").get("holders", {})) >= 2:
            break
        time.sleep(0.01)
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert state.exists() and json.loads(state.read_text())["status"] == "creating"
    assert cluster.down() == []
