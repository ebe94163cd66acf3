"""ssh into the hosts: a key pair and a host key of the cluster's own, one ``sshd`` per host, a wrapper.

Each host's ``sshd`` listens on the host's address only, with its own config (``HostKey`` and
``AuthorizedKeysFile`` in the state directory, ``PasswordAuthentication no``, ``StrictModes no``,
``UsePAM no``, a ``PidFile`` of its own), so the user's own ssh keys are never read or changed. It is
started on the host (:func:`testbed.hosts.enter`), so the sessions it starts have the host's name,
``/etc/hosts`` and CPUs. ``sshd`` needs its privilege-separation directory ``/run/sshd``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from testbed.hosts import enter, exec_env, zombie
from testbed.spec import ClusterError, ClusterSpec, paths, sh

PRIVSEP_DIR = Path("/run/sshd")


def write_ssh(spec: ClusterSpec) -> None:
    """A key pair and a host key for this cluster, known_hosts naming every host, ssh_config and an
    ``ssh`` wrapper that uses it (so launchers keep host keys in the state directory)."""
    p = paths(spec.state_dir)
    p["key"].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key in (p["key"], p["host_key"]):
        if not key.exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{spec.prefix}cluster", "-f", str(key))
    p["authorized_keys"].write_text(Path(f"{p['key']}.pub").read_text())
    host_pub = " ".join(Path(f"{p['host_key']}.pub").read_text().split()[:2])
    p["known_hosts"].write_text("".join(f"{name},{addr} {host_pub}\n" for name, addr in spec.addresses.items()))
    p["ssh_config"].write_text(
        f"Host *\n  IdentityFile {p['key']}\n  IdentitiesOnly yes\n  Port {spec.ssh_port}\n"
        f"  UserKnownHostsFile {p['known_hosts']}\n  StrictHostKeyChecking yes\n  LogLevel INFO\n"
        "  ConnectTimeout 10\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n")
    p["bin"].mkdir(exist_ok=True)
    wrapper = p["bin"] / "ssh"
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {p['ssh_config']} \"$@\"\n")
    wrapper.chmod(0o755)


def pid_file(spec: ClusterSpec, host: str) -> Path:
    """Where ``host``'s sshd writes its pid."""
    return Path(spec.state_dir) / host / "sshd.pid"


def sshd_config(spec: ClusterSpec, host: str) -> Path:
    """Write ``host``'s sshd config into ``STATE_DIR/HOST/``; its path."""
    p, d = paths(spec.state_dir), Path(spec.state_dir) / host
    d.mkdir(exist_ok=True)
    conf = d / "sshd_config"
    conf.write_text(
        f"ListenAddress {spec.addresses[host]}\nPort {spec.ssh_port}\nHostKey {p['host_key']}\n"
        f"AuthorizedKeysFile {p['authorized_keys']}\nPidFile {pid_file(spec, host)}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "PrintMotd no\nMaxStartups 200\nMaxSessions 200\nClientAliveInterval 5\nClientAliveCountMax 3\n"
        "LogLevel ERROR\n")
    return conf


def start_sshd(spec: ClusterSpec, state: dict, host: str) -> None:
    """Start ``host``'s sshd on the host (its namespaces and CPUs); it daemonizes.

    Raises:
        ClusterError: sshd exited non-zero.
    """
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    sh(*enter(state, host), shutil.which("sshd"), "-f", str(sshd_config(spec, host)))


def check_ssh(spec: ClusterSpec, state: dict) -> None:
    """From the first host, ssh to every host and read its hostname (an end-to-end check).

    Raises:
        ClusterError: a host did not answer with its name within about 5 s.
    """
    first, env = spec.names[0], exec_env(state)
    for host in spec.names:
        for _ in range(50):
            proc = subprocess.run([*enter(state, first), "ssh", host, "hostname"], env=env, capture_output=True,
                                  text=True)
            if proc.returncode == 0 and proc.stdout.strip() == host:
                break
            time.sleep(0.1)
        else:
            raise ClusterError(f"ssh {host} from {first} failed: {(proc.stderr or proc.stdout).strip()}")


def sshd_running() -> bool:
    """Whether any sshd (not a zombie) runs on the machine, ours or not: then ``/run/sshd`` stays."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "sshd" and not zombie(int(proc.name)):
                return True
        except OSError:
            continue
    return False
