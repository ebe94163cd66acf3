"""An emulated cluster on one machine: N hosts that ``horovodrun`` and ``mpirun`` launch across over ssh.

Each host is a network namespace ``<prefix>nodeI`` with one veth end named ``eth0`` (Horovod needs an
interface name common to all hosts) into a switch: a bridge ``br0`` in a namespace of its own
(``<prefix>switch``), so the machine's own network is never touched. A long-lived holder process per
host (``ip netns exec NS unshare --uts sh -c 'hostname nodeI; exec sleep infinity'``) owns the host's
UTS namespace (its hostname) and the mount namespace in which ``/etc/netns/NS/hosts`` (every host's
name and address; Gloo resolves hostnames) is ``/etc/hosts``. Everything that runs "on" a host, its
``sshd`` included, is started with ``nsenter`` into that holder's net, UTS and mount namespaces, so
ranks launched over ssh see the host's name and address. ``tc tbf`` optionally shapes each host's
egress to a link rate.

All state lives in one directory (default :data:`DEFAULT_STATE_DIR`): ``state.json`` (written before
anything is created, so :func:`down` cleans up after a crash), the key pair and host key made for
this cluster (``/root/.ssh`` is never touched), an ``ssh`` wrapper and ``ssh_config`` that keep host
keys in the state directory, both hostfile dialects and the launchers' ssh options.
Facts checked on this machine: ``/work/shared/emulated-cluster.md``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

DEFAULT_STATE_DIR = Path("/run/lmh-cluster")
DEFAULT_PREFIX = "lmh-"
DEFAULT_SUBNET = "10.213.77.0/24"
STATE = "state.json"
TOOLS = ("ip", "tc", "unshare", "nsenter", "sshd", "ssh", "ssh-keygen")
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
    """

    hosts: int = 2
    slots: int = 1
    rate_gbit: float | None = None
    subnet: str = DEFAULT_SUBNET
    state_dir: str = str(DEFAULT_STATE_DIR)
    prefix: str = DEFAULT_PREFIX
    ssh_port: int = 22

    def __post_init__(self):
        """Raises ValueError: a count < 1, a rate <= 0, a subnet too small or malformed, a bad prefix."""
        for name in ("hosts", "slots"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise ValueError(f"--{name} must be an integer in 1..64, got {value!r}")
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
        return ipaddress.IPv4Network(self.subnet, strict=False).prefixlen


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
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


def _write_state(state: dict) -> None:
    path = paths(state["spec"]["state_dir"])["state"]
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2) + "\n")
    os.replace(path.with_suffix(".tmp"), path)


def spec_of(state: dict) -> ClusterSpec:
    """The :class:`ClusterSpec` a state was made from."""
    return ClusterSpec(**state["spec"])


def namespaces() -> list[str]:
    """Every network namespace on the machine (``ip netns list``)."""
    return [line.split()[0] for line in _sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def namespace_pids(ns: str) -> list[int]:
    """The processes whose network namespace is ``ns``."""
    return [int(p) for p in _sh("ip", "netns", "pids", ns, check=False).stdout.split() if p.isdigit()]


def _write_ssh(spec: ClusterSpec) -> None:
    """A key pair and a host key for this cluster, known_hosts naming every host, ssh_config and an
    ``ssh`` wrapper that uses it (so launchers keep host keys in the state directory)."""
    p = paths(spec.state_dir)
    p["key"].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for key in (p["key"], p["host_key"]):
        if not key.exists():
            _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{spec.prefix}cluster", "-f", str(key))
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


def _sshd_config(spec: ClusterSpec, host: str) -> Path:
    p, d = paths(spec.state_dir), Path(spec.state_dir) / host
    d.mkdir(exist_ok=True)
    conf = d / "sshd_config"
    conf.write_text(
        f"ListenAddress {spec.addresses[host]}\nPort {spec.ssh_port}\nHostKey {p['host_key']}\n"
        f"AuthorizedKeysFile {p['authorized_keys']}\nPidFile {d / 'sshd.pid'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "PrintMotd no\nMaxStartups 200\nMaxSessions 200\nClientAliveInterval 5\nClientAliveCountMax 3\n"
        "LogLevel ERROR\n")
    return conf


def _write_netns_hosts(spec: ClusterSpec) -> None:
    """``/etc/netns/NS/hosts``: ``ip netns exec NS`` mounts it over ``/etc/hosts`` (Gloo resolves hostnames)."""
    lines = "127.0.0.1\tlocalhost\n::1\tlocalhost\n" + "".join(f"{a}\t{h}\n" for h, a in spec.addresses.items())
    for host in spec.names:
        d = Path("/etc/netns") / spec.namespace(host)
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts").write_text(lines)


def _make_network(spec: ClusterSpec) -> None:
    """The switch namespace with ``br0``; per host a namespace, a veth ``eth0``↔``pI`` and optional tbf."""
    sw = spec.switch
    _sh("ip", "netns", "add", sw)
    _sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
    _sh("ip", "-n", sw, "link", "set", "br0", "up")
    for i, host in enumerate(spec.names, start=1):
        ns = spec.namespace(host)
        _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", sw, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _sh("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
        _sh("ip", "-n", ns, "addr", "add", f"{spec.addresses[host]}/{spec.prefixlen}", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        if spec.rate_gbit:
            _sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", *tbf_args(spec.rate_gbit))


def tbf_args(rate_gbit: float) -> list[str]:
    """``tbf rate R burst B latency 50ms`` for a rate in Gbit/s: burst 4 ms of traffic, at least 256 KiB."""
    rate_bytes = rate_gbit * 1e9 / 8
    return ["tbf", "rate", f"{round(rate_gbit * 1000)}mbit", "burst", f"{max(256 * 1024, int(rate_bytes * 0.004))}",
            "latency", "50ms"]


def _start_holder(spec: ClusterSpec, host: str) -> int:
    """The long-lived process owning ``host``'s UTS and mount namespaces; returns its pid."""
    proc = subprocess.Popen(["ip", "netns", "exec", spec.namespace(host), "unshare", "--uts", "sh", "-c",
                             f"hostname {host} && exec sleep infinity"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        seen = _sh("nsenter", "-t", str(proc.pid), "-u", "hostname", check=False).stdout.strip()
        if seen == host:
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise ClusterError(f"the holder of {host} did not start (hostname {seen!r})")


def enter(state: dict, host: str) -> list[str]:
    """The ``nsenter`` prefix that runs a command on ``host`` (its net, UTS and mount namespaces), in the
    current directory.

    Raises:
        ClusterError: no such host in the cluster.
    """
    pid = state.get("holders", {}).get(host)
    if pid is None:
        raise ClusterError(f"no host {host!r} in the cluster (hosts: {', '.join(spec_of(state).names)})")
    return ["nsenter", "-t", str(pid), "-n", "-u", "-m", f"--wd={os.getcwd()}", "--"]


def exec_env(state: dict, environ: dict | None = None) -> dict:
    """The environment for commands on a host: the cluster's ``ssh`` wrapper first on ``PATH``."""
    env = dict(os.environ if environ is None else environ)
    env["PATH"] = f"{paths(state['spec']['state_dir'])['bin']}{os.pathsep}{env.get('PATH', '')}"
    return env


def _start_sshd(spec: ClusterSpec, state: dict, host: str) -> None:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    _sh(*enter(state, host), shutil.which("sshd"), "-f", str(_sshd_config(spec, host)))


def _check_ssh(spec: ClusterSpec, state: dict) -> None:
    """From the first host, ssh to every host and read its hostname (an end-to-end check)."""
    first, env = spec.names[0], exec_env(state)
    for host in spec.names:
        for attempt in range(50):
            proc = subprocess.run([*enter(state, first), "ssh", host, "hostname"], env=env, capture_output=True,
                                  text=True)
            if proc.returncode == 0 and proc.stdout.strip() == host:
                break
            time.sleep(0.1)
        else:
            raise ClusterError(f"ssh {host} from {first} failed: {(proc.stderr or proc.stdout).strip()}")


def launcher_ssh_args(spec: ClusterSpec) -> dict[str, list[str]]:
    """The ssh options each launcher needs: ``horovodrun`` (``--ssh-identity-file``/``--ssh-port``) and
    ``mpirun`` (``-mca plm_rsh_args '...'``, the ssh arguments Open MPI's rsh launcher adds)."""
    p = paths(spec.state_dir)
    rsh = f"-F {p['ssh_config']} -i {p['key']} -p {spec.ssh_port}"
    return {"horovodrun": ["--ssh-identity-file", str(p["key"]), "--ssh-port", str(spec.ssh_port)],
            "mpirun": ["-mca", "plm_rsh_args", rsh]}


def _harness() -> str:
    import sys

    beside = Path(sys.executable).parent / "harness"
    return str(beside) if beside.exists() else "harness"


def launch_examples(spec: ClusterSpec) -> list[str]:
    """The exact commands that launch across the cluster from its first host (as from a login node)."""
    p, ssh, first, k = paths(spec.state_dir), launcher_ssh_args(spec), spec.names[0], spec.hosts * spec.slots
    harness, hosts = _harness(), p["hosts"].read_text().strip()
    on = f"{harness} cluster exec --state-dir {spec.state_dir} {first} --"
    train = "--model mlp --dataset synthetic --max-steps 20 --out /tmp/cluster-run --overwrite"
    return [
        f"{on} {harness} train --np {k} -H {hosts} --launcher-args={shlex.quote(shlex.join(ssh['horovodrun']))} "
        f"--collective-timeout-s 20 {train}",
        f"{on} horovodrun -np {k} --hostfile {p['hostfile']} {shlex.join(ssh['horovodrun'])} "
        f"{harness} bench allreduce --sizes 1MB..64MB --out /tmp/cluster-ar --overwrite",
        f"{on} mpirun --allow-run-as-root -np {k} --hostfile {p['hostfile']} {shlex.join(ssh['mpirun'])} "
        f"-bind-to none -map-by slot -x PATH -x PYTHONPATH {harness} train {train}",
    ]


def _write_launch_files(spec: ClusterSpec) -> None:
    p, ssh = paths(spec.state_dir), launcher_ssh_args(spec)
    p["hostfile"].write_text("".join(f"{h} slots={spec.slots}\n" for h in spec.names))
    p["hosts"].write_text(",".join(f"{h}:{spec.slots}" for h in spec.names) + "\n")
    p["horovodrun_args"].write_text(shlex.join(ssh["horovodrun"]) + "\n")
    p["mpirun_args"].write_text(shlex.join(ssh["mpirun"]) + "\n")
    p["commands"].write_text("\n".join(launch_examples(spec)) + "\n")
    p["discover"].write_text(f"#!/bin/sh\n# horovodrun --host-discovery-script: the hosts not marked down\n"
                             f"cat {shlex.quote(str(p['discovered']))}\n")
    p["discover"].chmod(0o755)
    write_discovered(spec, set())


def write_discovered(spec: ClusterSpec, down_hosts: set[str]) -> None:
    """Write the hosts that the discovery script prints (``host:slots``), leaving out ``down_hosts``.

    Written to a temporary file and renamed, so Horovod never reads half a list.
    """
    p = paths(spec.state_dir)
    tmp = p["discovered"].with_suffix(".tmp")
    tmp.write_text("".join(f"{h}:{spec.slots}\n" for h in spec.names if h not in down_hosts))
    os.replace(tmp, p["discovered"])


def mark(state: dict, host: str, up_: bool) -> list[str]:
    """Mark ``host`` up or down for elastic jobs: the discovery script lists it or leaves it out.

    Horovod's elastic driver runs the script every second: a host left out has its workers stopped
    and the job goes on with the others; a host listed again gets workers, which join at the next
    commit. Returns the hosts now listed.
    """
    enter(state, host)  # validates the host
    down_hosts = set(state.get("marked_down", [])) - {host} | (set() if up_ else {host})
    state["marked_down"] = sorted(down_hosts)
    _write_state(state)
    spec = spec_of(state)
    write_discovered(spec, down_hosts)
    return [h for h in spec.names if h not in down_hosts]


def up(spec: ClusterSpec) -> dict:
    """Make the cluster (idempotent: a healthy cluster of the same spec is left as it is).

    The state is recorded before anything is created, so :func:`down` removes a half-made cluster.

    Returns:
        The state (``spec``, ``holders`` host → pid, ``status``).

    Raises:
        ClusterError: not root or a tool missing; another cluster (other spec) in the state directory;
            a state directory that holds files of something else; a step that failed (the half-made
            cluster is removed again).
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
    taken = sorted(set(namespaces()) & {spec.switch, *map(spec.namespace, spec.names)})
    if taken:
        raise ClusterError(f"namespaces {', '.join(taken)} exist but belong to no cluster in {state_dir}; "
                           f"remove them (ip netns del) or use another prefix")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = {"spec": dataclasses.asdict(spec), "status": "creating", "holders": {},
             "run_sshd_created": not Path("/run/sshd").exists()}
    _write_state(state)
    try:
        _build(spec, state)
    except BaseException:
        down(state_dir)
        raise
    return state


def _build(spec: ClusterSpec, state: dict) -> None:
    _write_ssh(spec)
    _write_netns_hosts(spec)
    _make_network(spec)
    for host in spec.names:
        state["holders"][host] = _start_holder(spec, host)
        _write_state(state)
    for host in spec.names:
        _start_sshd(spec, state, host)
    _check_ssh(spec, state)
    _write_launch_files(spec)
    state["status"] = "up"
    _write_state(state)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in pids):
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


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
        _kill_all(namespace_pids(ns))
    for ns in ours:
        _sh("ip", "netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    netns_dir = Path("/etc/netns")
    for entry in sorted(e for e in netns_dir.iterdir() if mine.match(e.name)) if netns_dir.is_dir() else []:
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(f"{entry}")
    if state is not None:
        shutil.rmtree(state_dir, ignore_errors=True)
        removed.append(f"state directory {state_dir}")
        if state.get("run_sshd_created") and not _sshd_running():
            shutil.rmtree("/run/sshd", ignore_errors=True)
    return removed


def _sshd_running() -> bool:
    """Whether any sshd (not a zombie) runs on the machine, ours or not: then ``/run/sshd`` stays."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "sshd" and not _zombie(int(proc.name)):
                return True
        except OSError:
            continue
    return False


def status(state: dict) -> dict:
    """Each host's namespace, holder, sshd, hostname, address and qdisc; ``healthy`` when all are there."""
    spec, existing = spec_of(state), set(namespaces())
    hosts = []
    for host in spec.names:
        ns, pid = spec.namespace(host), state.get("holders", {}).get(host)
        alive = pid is not None and ns in existing and pid in namespace_pids(ns)
        name = _sh(*enter(state, host)[:-2], "hostname", check=False).stdout.strip() if alive else None
        sshd = _pidfile_alive(Path(spec.state_dir) / host / "sshd.pid")
        qdisc = _sh("ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "eth0", check=False).stdout.strip() \
            if ns in existing else ""
        hosts.append({"host": host, "namespace": ns, "address": spec.addresses[host], "holder_pid": pid,
                      "hostname": name, "sshd": sshd, "qdisc": qdisc.split(" refcnt")[0],
                      "healthy": alive and name == host and sshd})
    return {"state_dir": spec.state_dir, "status": state.get("status"), "switch": spec.switch in existing,
            "rate_gbit": spec.rate_gbit, "hosts": hosts}


def _pidfile_alive(path: Path) -> bool:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists() and not _zombie(pid)


def set_link(state: dict, host: str, up_: bool) -> None:
    """Set ``host``'s ``eth0`` up or down (a link failure, as a pulled cable); the discovery script
    follows (:func:`mark`)."""
    enter(state, host)  # validates the host
    _sh("ip", "-n", spec_of(state).namespace(host), "link", "set", "eth0", "up" if up_ else "down")
    mark(state, host, up_)


def kill_host(state: dict, host: str) -> int:
    """SIGKILL every process on ``host`` (its ranks, sshd and holder: a host crash); returns how many.

    The host's namespace and address stay, so peers see connections reset rather than silence.
    """
    enter(state, host)
    pids = namespace_pids(spec_of(state).namespace(host))
    _kill_all(pids)
    mark(state, host, False)
    return len(pids)
