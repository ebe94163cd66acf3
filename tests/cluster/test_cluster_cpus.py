"""Each emulated host has its own CPU set: commands started on it, over ssh and by the launchers, see only the
host's CPUs (``os.sched_getaffinity``), as ``cluster status`` records them; ``--cpus-per-host`` sets the size."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

from testbed import cpu_sets, format_cpus
from tests.cluster.conftest import SUBNET, harness

AVAILABLE = sorted(os.sched_getaffinity(0))
SHOW = "import os, socket; print('CPUS', socket.gethostname(), sorted(os.sched_getaffinity(0)), flush=True)"
REMOTE_SHOW = shlex.join([sys.executable, "-c", SHOW])  # one string: the remote shell splits it
HOROVODRUN = f"{sys.prefix}/bin/horovodrun"


def seen(output: str) -> dict[str, list[int]]:
    """host → the CPUs its ``SHOW`` line printed."""
    return {host: json.loads(cpus) for host, cpus in re.findall(r"CPUS (\S+) (\[[0-9, ]*\])", output)}


def expected(hosts: int, per_host: int | None = None) -> dict[str, list[int]]:
    return cpu_sets([f"node{i}" for i in range(1, hosts + 1)], per_host, AVAILABLE)


def test_each_host_sees_only_its_cpus_on_exec_over_ssh_and_under_horovodrun(cluster):
    want = expected(2)
    status = json.loads(harness("cluster", "status", "--json", "--state-dir", str(cluster.state_dir)).stdout)
    assert [(h["host"], h["cpus"], h["sshd_cpus"]) for h in status["hosts"]] == [
        (host, format_cpus(cpus), format_cpus(cpus)) for host, cpus in want.items()], status
    for host in want:  # harness cluster exec: nsenter under taskset
        proc = cluster.on(host, sys.executable, "-c", SHOW)
        assert proc.returncode == 0 and seen(proc.stdout) == {host: want[host]}, proc.output
    for host in want:  # ssh from node1, as horovodrun and mpirun start remote ranks
        over_ssh = cluster.on("node1", "ssh", host, REMOTE_SHOW)
        assert over_ssh.returncode == 0 and seen(over_ssh.stdout) == {host: want[host]}, over_ssh.output
    launched = cluster.on("node1", HOROVODRUN, "-np", "2", "-H", "node1:1,node2:1", "--gloo",
                          *cluster.args("horovodrun").split(), sys.executable, "-c", SHOW)
    assert launched.returncode == 0 and seen(launched.stdout) == want, launched.output


def test_cpus_per_host_sets_the_size_of_every_hosts_set(make_cluster):
    cluster = make_cluster(hosts=2, cpus_per_host=len(AVAILABLE))  # every host on every CPU
    proc = cluster.on("node1", "ssh", "node2", REMOTE_SHOW)
    assert proc.returncode == 0 and seen(proc.stdout) == {"node2": AVAILABLE}, proc.output
    assert cluster.state["cpus"] == expected(2, len(AVAILABLE))


def test_more_cpus_per_host_than_the_machine_has_is_one_line_and_exit_2(tmp_path):
    proc = harness("cluster", "up", "--hosts", "2", "--cpus-per-host", str(len(AVAILABLE) + 1), "--prefix", "lmhc-",
                   "--subnet", SUBNET, "--state-dir", str(tmp_path / "s"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"harness: error: --cpus-per-host {len(AVAILABLE) + 1} is more than the {len(AVAILABLE)} CPUs this machine "
        f"lets the cluster use ({format_cpus(AVAILABLE)})"], proc.output
    assert not (tmp_path / "s").exists()
