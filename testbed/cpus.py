"""Each emulated host's share of the machine's CPUs: a CPU set that everything started on the host inherits.

A host's CPU set is the CPU affinity of its holder process, of its ``sshd`` (so of every session and rank
that arrives over ssh: children inherit the affinity of their parent) and of every command started on it
with :func:`testbed.hosts.enter`. ``os.sched_getaffinity(0)`` on a host therefore lists the host's CPUs
and nothing else, and OpenMP and PyTorch size their default thread pools to it.

This is affinity, not a cgroup: a process may still widen its own mask with ``sched_setaffinity``. A
cgroup v2 ``cpuset`` would forbid that, but needs a unified hierarchy with the cpuset controller
enabled, which machines running in containers often lack.
"""

from __future__ import annotations

import os
from pathlib import Path


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), ascending."""
    return sorted(os.sched_getaffinity(0))


def cpu_sets(hosts: list[str], cpus_per_host: int | None, available: list[int]) -> dict[str, list[int]]:
    """Each host's CPUs: ``n`` consecutive CPUs of ``available`` per host, wrapping around.

    With ``n = cpus_per_host`` (default ``max(1, len(available) // len(hosts))``) host ``i`` (0-based)
    gets ``available[(i·n + j) mod len(available)]`` for ``j < n``: an even split when the CPUs go
    round, otherwise hosts share CPUs as evenly as the wrap-around allows (3 hosts on 2 CPUs:
    ``[0], [1], [0]``).

    Args:
        hosts: the hosts' names, in order.
        cpus_per_host: CPUs per host, or None for the even split.
        available: the CPUs that may be handed out (ascending, no repeats).

    Returns:
        host → its CPUs, ascending.

    Raises:
        ValueError: no CPU available, or ``cpus_per_host`` larger than the CPUs available.
    """
    if not available:
        raise ValueError("no CPU is available to this process")
    n = cpus_per_host or max(1, len(available) // len(hosts))
    if n > len(available):
        raise ValueError(f"--cpus-per-host {n} is more than the {len(available)} CPUs this machine lets "
                         f"the cluster use ({format_cpus(available)})")
    return {host: sorted({available[(i * n + j) % len(available)] for j in range(n)})
            for i, host in enumerate(hosts)}


def format_cpus(cpus: list[int]) -> str:
    """A CPU list as ``taskset -c`` and ``/proc/PID/status`` write it: ``[0, 1, 2, 5]`` → ``"0-2,5"``."""
    ranges, cpus = [], sorted(set(cpus))
    for cpu in cpus:
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def parse_cpus(text: str) -> list[int]:
    """The inverse of :func:`format_cpus`: ``"0-2,5"`` → ``[0, 1, 2, 5]``.

    Raises:
        ValueError: a malformed list.
    """
    cpus = set()
    for part in filter(None, text.strip().split(",")):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return sorted(cpus)


def affinity_prefix(cpus: list[int] | None) -> list[str]:
    """``taskset -c LIST``: the argv prefix that starts a command on ``cpus`` (empty for None)."""
    return ["taskset", "-c", format_cpus(cpus)] if cpus else []


def allowed_cpus(pid: int) -> list[int] | None:
    """The CPUs process ``pid`` may run on (``Cpus_allowed_list``), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return parse_cpus(line.split(":", 1)[1])
    return None
