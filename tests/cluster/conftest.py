"""Emulated clusters for tests: made with ``harness cluster up``, removed with ``down``, and checked to leave
nothing behind (namespaces, processes in them, interfaces, ``/etc/netns`` entries, the state directory).

Skipped, with the reason, where the machine cannot make one: not root, no ``ip netns``, no ``sshd``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, worker_env

PREFIX = "lmht-"  # not the default prefix, so the tests never touch a user's cluster; one prefix per cluster
SUBNET = "10.213.78.0/24"
HARNESS = [sys.executable, "-m", "harness_cli"]


def _why_not() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "emulated cluster needs root"
    if not shutil.which("ip") or subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "emulated cluster needs `ip netns` (iproute2) and permission to use it"
    if not shutil.which("sshd"):
        return "emulated cluster needs sshd (Debian: openssh-server)"
    if not (Path(sys.executable).parent / "horovodrun").exists():
        return "horovodrun is not installed in this environment yet"
    return None


WHY_NOT = _why_not()
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Every test here but ``test_cluster_pure.py`` runs real multi-host jobs (marked ``parallel``) and is
    skipped, with the reason, where the machine cannot make an emulated cluster."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if HERE in path.parents and path.name != "test_cluster_pure.py":
            item.add_marker(pytest.mark.parallel)
            if WHY_NOT:
                item.add_marker(pytest.mark.skip(reason=WHY_NOT))


def harness(*args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    """Run ``harness ARGS`` from the repository root; ``.output`` is stdout + stderr."""
    proc = subprocess.run([*HARNESS, *args], cwd=ROOT, env=worker_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    proc.output = proc.stdout + proc.stderr
    return proc


def root_links() -> set[str]:
    """The interfaces of the machine's own network namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def namespace_inodes(prefix: str) -> dict[str, int]:
    """Our namespaces' inodes (``/run/netns/NS``), to find processes left in them after they are deleted."""
    found = {}
    for path in Path("/run/netns").glob(f"{prefix}*") if Path("/run/netns").is_dir() else []:
        found[path.name] = path.stat().st_ino
    return found


def processes_in(inodes: set[int]) -> list[str]:
    """``pid cmdline`` of every process whose network namespace is one of ``inodes``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            link = os.readlink(proc / "ns" / "net")
            if int(link.split("[")[1].rstrip("]")) in inodes:
                cmdline = (proc / "cmdline").read_bytes().replace(bytes(1), b" ").decode()
                found.append(f"{proc.name} {cmdline[:80]}")
        except (OSError, ValueError, IndexError):
            continue
    return found


def leftovers(prefix: str, state_dir: Path, inodes: set[int], links_before: set[str]) -> list[str]:
    """Everything a cluster could leave behind, one line each; empty when ``down`` removed it all."""
    left = [f"namespace {ns}" for ns in namespace_inodes(prefix)]
    netns = Path("/etc/netns")
    left += [f"/etc/netns/{p.name}" for p in netns.glob(f"{prefix}*")] if netns.is_dir() else []
    left += [f"process {p}" for p in processes_in(inodes)]
    left += [f"interface {name} in the machine's namespace" for name in sorted(root_links() - links_before)]
    left += [f"state directory {state_dir}"] if state_dir.exists() else []
    return left


class Cluster:
    """A cluster made by ``harness cluster up`` for one test (or module); ``run`` runs a command on a host."""

    def __init__(self, state_dir: Path, hosts: int = 2, rate: float | None = None, prefix: str = PREFIX,
                 cpus_per_host: int | None = None):
        self.state_dir, self.hosts, self.rate, self.prefix = state_dir, hosts, rate, prefix
        self.cpus_per_host = cpus_per_host
        self.links_before = root_links()
        self.inodes: set[int] = set()

    def up(self) -> subprocess.CompletedProcess:
        args = ["cluster", "up", "--hosts", str(self.hosts), "--prefix", self.prefix, "--subnet", SUBNET,
                "--state-dir", str(self.state_dir)]
        args += ["--rate", str(self.rate)] if self.rate else []
        args += ["--cpus-per-host", str(self.cpus_per_host)] if self.cpus_per_host else []
        proc = harness(*args, timeout=120)
        self.inodes |= set(namespace_inodes(self.prefix).values())
        return proc

    @property
    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    @property
    def key(self) -> str:
        return str(self.state_dir / "ssh" / "id_ed25519")

    @property
    def hostfile(self) -> str:
        return str(self.state_dir / "hostfile")

    def args(self, launcher: str) -> str:
        """The launcher's ssh options as ``up`` wrote them (one string for ``--launcher-args``)."""
        name = "horovodrun-ssh.args" if launcher == "horovodrun" else "mpirun-ssh.args"
        return (self.state_dir / name).read_text().strip()

    def on(self, host: str, *argv: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
        """``harness cluster exec HOST -- ARGV``."""
        return harness("cluster", "exec", "--state-dir", str(self.state_dir), host, "--", *argv, timeout=timeout,
                       **env)

    def popen_on(self, host: str, *argv: str, log: Path, **env: str) -> subprocess.Popen:
        """Start ``harness cluster exec HOST -- ARGV`` in the background, output to ``log``."""
        return subprocess.Popen([*HARNESS, "cluster", "exec", "--state-dir", str(self.state_dir), host, "--", *argv],
                                cwd=ROOT, env=worker_env(**env), stdout=log.open("w"), stderr=subprocess.STDOUT)

    def down(self) -> list[str]:
        """``harness cluster down``; returns what is left behind (should be nothing)."""
        self.inodes |= set(namespace_inodes(self.prefix).values())
        proc = harness("cluster", "down", "--state-dir", str(self.state_dir), "--prefix", self.prefix, timeout=120)
        assert proc.returncode == 0, proc.output
        return leftovers(self.prefix, self.state_dir, self.inodes, self.links_before)


def _made(state_dir: Path, **kw) -> Cluster:
    cluster = Cluster(state_dir, **kw)
    proc = cluster.up()
    if proc.returncode != 0:
        cluster.down()
        pytest.fail(proc.output)
    return cluster


@pytest.fixture
def make_cluster(tmp_path):
    """Make clusters for one test; each is removed afterwards and must leave nothing behind."""
    made = []

    def make(**kw) -> Cluster:
        cluster = _made(tmp_path / f"cluster{len(made)}", prefix=f"lmhf{len(made)}-", **kw)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        assert cluster.down() == []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-host unshaped cluster shared by a module's tests; removed at the end, nothing left behind."""
    made = _made(tmp_path_factory.mktemp("cluster") / "state")
    yield made
    assert made.down() == []
