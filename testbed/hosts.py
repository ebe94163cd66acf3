"""Running things on a host: its holder process, the ``nsenter`` prefix, the environment, killing.

A host's holder (``ip netns exec NS unshare --uts sh -c 'hostname nodeI; exec sleep infinity'``, on the
host's CPU set) owns the host's UTS namespace (its hostname) and the mount namespace in which
``/etc/netns/NS/hosts`` is ``/etc/hosts``. Everything that runs on the host is started with ``nsenter``
into the holder's net, UTS and mount namespaces, under ``taskset`` with the host's CPUs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from testbed.cpus import affinity_prefix
from testbed.spec import ClusterError, ClusterSpec, paths, sh, spec_of


def start_holder(spec: ClusterSpec, host: str, cpus: list[int] | None) -> int:
    """Start the long-lived process owning ``host``'s UTS and mount namespaces on ``cpus``; its pid.

    Raises:
        ClusterError: it did not come up with the host's name within 5 s.
    """
    proc = subprocess.Popen([*affinity_prefix(cpus), "ip", "netns", "exec", spec.namespace(host), "unshare", "--uts",
                             "sh", "-c", f"hostname {host} && exec sleep infinity"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen = None
    for _ in range(100):
        seen = sh("nsenter", "-t", str(proc.pid), "-u", "hostname", check=False).stdout.strip()
        if seen == host:
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise ClusterError(f"the holder of {host} did not start (hostname {seen!r})")


def host_cpus(state: dict, host: str) -> list[int] | None:
    """The CPUs of ``host`` recorded in ``state`` (None for a cluster made without CPU sets)."""
    return state.get("cpus", {}).get(host)


def enter(state: dict, host: str) -> list[str]:
    """The prefix that runs a command on ``host``: on its CPUs (``taskset``), in its net, UTS and mount
    namespaces (``nsenter``), in the current directory.

    Raises:
        ClusterError: no such host in the cluster.
    """
    pid = state.get("holders", {}).get(host)
    if pid is None:
        raise ClusterError(f"no host {host!r} in the cluster (hosts: {', '.join(spec_of(state).names)})")
    return [*affinity_prefix(host_cpus(state, host)), "nsenter", "-t", str(pid), "-n", "-u", "-m",
            f"--wd={os.getcwd()}", "--"]


def exec_env(state: dict, environ: dict | None = None) -> dict:
    """The environment for commands on a host: the cluster's ``ssh`` wrapper first on ``PATH``."""
    env = dict(os.environ if environ is None else environ)
    env["PATH"] = f"{paths(state['spec']['state_dir'])['bin']}{os.pathsep}{env.get('PATH', '')}"
    return env


def kill_all(pids: list[int]) -> None:
    """SIGKILL ``pids`` and wait (up to 10 s) until none is running."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and not zombie(pid) for pid in pids):
        time.sleep(0.05)


def zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie or gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def pidfile_pid(path: Path) -> int | None:
    """The pid in a pid file when that process runs (not a zombie), else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() and not zombie(pid) else None
