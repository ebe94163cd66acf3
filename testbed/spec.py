"""What a cluster is made from (:class:`ClusterSpec`), where its state lives, and the checks before making one."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

DEFAULT_STATE_DIR = Path("/run/lmh-cluster")
DEFAULT_PREFIX = "lmh-"
DEFAULT_SUBNET = "10.213.77.0/24"
STATE = "state.json"
TOOLS = ("ip", "tc", "unshare", "nsenter", "taskset", "sshd", "ssh", "ssh-keygen")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,7}-$")


class ClusterError(RuntimeError):
    """The emulated cluster cannot be made or used here (not root, a tool missing, a step failed)."""


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """What ``harness cluster up`` builds.

    Attributes:
        hosts: number of hosts N (named ``node1`` .. ``nodeN``).
        slots: slots (ranks) per host written into the hostfiles.
        rate_gbit: egress rate of every host's link in Gbit/s (``tc tbf``); None leaves links unshaped.
        subnet: the private IPv4 subnet the hosts' addresses come from (first N addresses).
        state_dir: where the state, keys, hostfiles and ssh options are kept.
        prefix: prefix of the namespaces (``<prefix>node1``, ``<prefix>switch``) and ``/etc/netns`` entries.
        ssh_port: the port each host's sshd listens on (on its own address only).
        cpus_per_host: CPUs in each host's CPU set; None splits the machine's CPUs evenly over the hosts
            (at least 1 each; see :func:`testbed.cpus.cpu_sets`).
    """

    hosts: int = 2
    slots: int = 1
    rate_gbit: float | None = None
    subnet: str = DEFAULT_SUBNET
    state_dir: str = str(DEFAULT_STATE_DIR)
    prefix: str = DEFAULT_PREFIX
    ssh_port: int = 22
    cpus_per_host: int | None = None

    def __post_init__(self):
        """Raises ValueError: a count < 1, a rate <= 0, a subnet too small or malformed, a bad prefix."""
        for name in ("hosts", "slots"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise ValueError(f"--{name} must be an integer in 1..64, got {value!r}")
        cpus = self.cpus_per_host
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1):
            raise ValueError(f"--cpus-per-host must be a positive integer, got {cpus!r}")
        if self.rate_gbit is not None and not 0 < self.rate_gbit <= 100:
            raise ValueError(f"--rate must be in (0, 100] Gbit/s, got {self.rate_gbit}")
        try:
            net = ipaddress.IPv4Network(self.subnet, strict=False)
        except ValueError:
            raise ValueError(f"--subnet must be an IPv4 network like {DEFAULT_SUBNET}, got {self.subnet!r}") from None
        if net.num_addresses - 2 < self.hosts:
            raise ValueError(f"--subnet {self.subnet} has fewer than {self.hosts} host addresses")
        if not self.state_dir or any(c.isspace() or c in "'\"\\$`" for c in str(self.state_dir)):
            raise ValueError(f"--state-dir must be a path without spaces or quotes (ssh options name it), "
                             f"got {self.state_dir!r}")
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"prefix must be 2-8 lowercase letters/digits and a '-', got {self.prefix!r}")

    @property
    def names(self) -> list[str]:
        """The hosts' names, ``node1`` .. ``nodeN``."""
        return [f"node{i}" for i in range(1, self.hosts + 1)]

    @property
    def switch(self) -> str:
        """The switch's namespace."""
        return f"{self.prefix}switch"

    def namespace(self, host: str) -> str:
        """The network namespace of ``host``."""
        return f"{self.prefix}{host}"

    @property
    def addresses(self) -> dict[str, str]:
        """host → IPv4 address (the subnet's first N host addresses)."""
        net = ipaddress.IPv4Network(self.subnet, strict=False)
        return {name: str(addr) for name, addr in zip(self.names, net.hosts())}

    @property
    def prefixlen(self) -> int:
        """The subnet's prefix length (the hosts' addresses are ``ADDRESS/prefixlen``)."""
        return ipaddress.IPv4Network(self.subnet, strict=False).prefixlen


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``argv``, capturing its output.

    Raises:
        ClusterError: ``check`` and a non-zero exit; the message holds the command and its last line.
    """
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if check and proc.returncode != 0:
        last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]
        raise ClusterError(f"{shlex.join(argv)} failed: {last}")
    return proc


def preflight() -> None:
    """Check that the cluster can be made here.

    Raises:
        ClusterError: not root, or one of :data:`TOOLS` missing (the message names it and its package).
    """
    if os.geteuid() != 0:
        raise ClusterError("harness cluster needs root (network namespaces, veths, sshd); run it as root")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        raise ClusterError(f"harness cluster needs {', '.join(missing)} (Debian: iproute2, util-linux, "
                           "openssh-server, openssh-client)")


def paths(state_dir: str | Path) -> dict[str, Path]:
    """The files of a cluster's state directory, by role."""
    d = Path(state_dir)
    return {"state": d / STATE, "key": d / "ssh" / "id_ed25519", "host_key": d / "ssh" / "host_ed25519",
            "authorized_keys": d / "ssh" / "authorized_keys", "known_hosts": d / "ssh" / "known_hosts",
            "ssh_config": d / "ssh" / "ssh_config", "bin": d / "bin", "hostfile": d / "hostfile",
            "hosts": d / "hosts", "horovodrun_args": d / "horovodrun-ssh.args",
            "mpirun_args": d / "mpirun-ssh.args", "commands": d / "commands.txt",
            "discover": d / "discover-hosts.sh", "discovered": d / "discovered-hosts"}


def read_state(state_dir: str | Path) -> dict | None:
    """The recorded state, or None when the directory holds no cluster."""
    try:
        return json.loads(paths(state_dir)["state"].read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_state(state: dict) -> None:
    """Record ``state`` in its state directory (a temporary file renamed, so a reader never sees half)."""
    path = paths(state["spec"]["state_dir"])["state"]
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2) + "\n")
    os.replace(path.with_suffix(".tmp"), path)


def spec_of(state: dict) -> ClusterSpec:
    """The :class:`ClusterSpec` a state was made from."""
    return ClusterSpec(**state["spec"])
