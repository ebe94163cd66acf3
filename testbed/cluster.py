"""Making, checking and removing a cluster, and breaking its hosts on purpose (failure drills).

All state lives in one directory (default :data:`testbed.spec.DEFAULT_STATE_DIR`): ``state.json``
(written before anything is created, so :func:`down` cleans up after a crash), the keys, the ``ssh``
wrapper and ``ssh_config``, both hostfile dialects and the launchers' ssh options.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from testbed import cpus as cpuset
from testbed.hosts import enter, host_cpus, kill_all, pidfile_pid, start_holder
from testbed.launchfiles import write_discovered, write_launch_files
from testbed.network import NETNS_ETC, make_network, namespace_pids, namespaces, qdisc, set_eth0, write_netns_hosts
from testbed.spec import (
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    ClusterError,
    ClusterSpec,
    preflight,
    read_state,
    sh,
    spec_of,
    write_state,
)
from testbed.sshd import PRIVSEP_DIR, check_ssh, pid_file, sshd_running, start_sshd, write_ssh


def up(spec: ClusterSpec) -> dict:
    """Make the cluster (idempotent: a healthy cluster of the same spec is left as it is).

    The state is recorded before anything is created, so :func:`down` removes a half-made cluster.

    Returns:
        The state (``spec``, ``cpus`` host → its CPU list, ``holders`` host → pid, ``status``).

    Raises:
        ClusterError: not root or a tool missing; another cluster (other spec) in the state directory;
            a state directory that holds files of something else; a step that failed (the half-made
            cluster is removed again).
        ValueError: more CPUs per host than this process may use.
    """
    preflight()
    state_dir = Path(spec.state_dir)
    state = read_state(state_dir)
    if state is not None:
        if state["spec"] != dataclasses.asdict(spec):
            raise ClusterError(f"a different cluster is up in {state_dir} ({spec_of(state).hosts} hosts); "
                               f"run: harness cluster down --state-dir {state_dir}")
        if state.get("status") == "up" and all(h["healthy"] for h in status(state)["hosts"]):
            return state
        down(state_dir)
    elif state_dir.exists() and any(state_dir.iterdir()):
        raise ClusterError(f"--state-dir {state_dir} has files that are not a cluster's; choose another directory")
    cpus = cpuset.cpu_sets(spec.names, spec.cpus_per_host, cpuset.available_cpus())
    taken = sorted(set(namespaces()) & {spec.switch, *map(spec.namespace, spec.names)})
    if taken:
        raise ClusterError(f"namespaces {', '.join(taken)} exist but belong to no cluster in {state_dir}; "
                           f"remove them (ip netns del) or use another prefix")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = {"spec": dataclasses.asdict(spec), "status": "creating", "cpus": cpus, "holders": {},
             "run_sshd_created": not PRIVSEP_DIR.exists()}
    write_state(state)
    try:
        _build(spec, state)
    except BaseException:
        down(state_dir)
        raise
    return state


def _build(spec: ClusterSpec, state: dict) -> None:
    write_ssh(spec)
    write_netns_hosts(spec)
    make_network(spec)
    for host in spec.names:
        state["holders"][host] = start_holder(spec, host, host_cpus(state, host))
        write_state(state)
    for host in spec.names:
        start_sshd(spec, state, host)
    check_ssh(spec, state)
    write_launch_files(spec)
    state["status"] = "up"
    write_state(state)


def down(state_dir: str | Path = DEFAULT_STATE_DIR, *, prefix: str | None = None) -> list[str]:
    """Remove every process, namespace (with its interfaces), ``/etc/netns`` entry and file of a cluster.

    Works from ``state.json`` alone (after a crash too), and also removes namespaces and ``/etc/netns``
    entries with the cluster's prefix that the state does not list (a ``up`` killed mid-way).

    Returns:
        What was removed, one item each (empty when there was no cluster).

    Raises:
        ClusterError: not root or a tool missing.
    """
    preflight()
    state_dir = Path(state_dir)
    state = read_state(state_dir)
    prefix = state["spec"]["prefix"] if state else (prefix or DEFAULT_PREFIX)
    mine = re.compile(rf"^{re.escape(prefix)}(node[0-9]+|switch)$")
    ours = sorted(ns for ns in namespaces() if mine.match(ns))
    removed = []
    for ns in ours:
        kill_all(namespace_pids(ns))
    for ns in ours:
        sh("ip", "netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    for entry in sorted(e for e in NETNS_ETC.iterdir() if mine.match(e.name)) if NETNS_ETC.is_dir() else []:
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(f"{entry}")
    if state is not None:
        shutil.rmtree(state_dir, ignore_errors=True)
        removed.append(f"state directory {state_dir}")
        if state.get("run_sshd_created") and not sshd_running():
            shutil.rmtree(PRIVSEP_DIR, ignore_errors=True)
    return removed


def status(state: dict) -> dict:
    """Each host's namespace, holder, sshd, hostname, address, CPUs and qdisc; ``healthy`` when all are as made.

    A host's ``cpus`` is its recorded CPU list (``"0-1"``); ``sshd_cpus`` is the CPU list its running sshd
    may use, which must be the same (None when sshd is not running or the cluster has no CPU sets).
    """
    spec, existing = spec_of(state), set(namespaces())
    hosts = []
    for host in spec.names:
        ns, pid = spec.namespace(host), state.get("holders", {}).get(host)
        alive = pid is not None and ns in existing and pid in namespace_pids(ns)
        name = sh(*enter(state, host)[:-2], "hostname", check=False).stdout.strip() if alive else None
        sshd_pid, cpus = pidfile_pid(pid_file(spec, host)), host_cpus(state, host)
        sshd_cpus = cpuset.allowed_cpus(sshd_pid) if sshd_pid and cpus else None
        hosts.append({"host": host, "namespace": ns, "address": spec.addresses[host], "holder_pid": pid,
                      "hostname": name, "sshd": sshd_pid is not None, "qdisc": qdisc(ns) if ns in existing else "",
                      "cpus": cpuset.format_cpus(cpus) if cpus else None,
                      "sshd_cpus": cpuset.format_cpus(sshd_cpus) if sshd_cpus else None,
                      "healthy": alive and name == host and sshd_pid is not None and sshd_cpus == cpus})
    return {"state_dir": spec.state_dir, "status": state.get("status"), "switch": spec.switch in existing,
            "rate_gbit": spec.rate_gbit, "hosts": hosts}


def mark(state: dict, host: str, up_: bool) -> list[str]:
    """Mark ``host`` up or down for elastic jobs: the discovery script lists it or leaves it out.

    Horovod's elastic driver runs the script every second: a host left out has its workers stopped
    and the job goes on with the others; a host listed again gets workers, which join at the next
    commit. Returns the hosts now listed.
    """
    enter(state, host)  # validates the host
    down_hosts = set(state.get("marked_down", [])) - {host} | (set() if up_ else {host})
    state["marked_down"] = sorted(down_hosts)
    write_state(state)
    spec = spec_of(state)
    write_discovered(spec, down_hosts)
    return [h for h in spec.names if h not in down_hosts]


def set_link(state: dict, host: str, up_: bool) -> None:
    """Set ``host``'s ``eth0`` up or down (a link failure, as a pulled cable); the discovery script
    follows (:func:`mark`)."""
    enter(state, host)  # validates the host
    set_eth0(spec_of(state).namespace(host), up_)
    mark(state, host, up_)


def kill_host(state: dict, host: str) -> int:
    """SIGKILL every process on ``host`` (its ranks, sshd and holder: a host crash); returns how many.

    The host's namespace and address stay, so peers see connections reset rather than silence.
    """
    enter(state, host)
    pids = namespace_pids(spec_of(state).namespace(host))
    kill_all(pids)
    mark(state, host, False)
    return len(pids)
