"""``harness cluster up|down|status|exec|link|kill``: an emulated cluster of N hosts on this machine.

The work is :mod:`testbed`'s (the emulated cluster, outside the runtime); this module parses flags and prints.
"""

from __future__ import annotations

import argparse
import json
import subprocess

from harness.runtime.errors import ConfigError


def _cluster():
    import testbed

    return testbed


def _state(args: argparse.Namespace) -> dict:
    cluster = _cluster()
    try:
        cluster.preflight()
    except cluster.ClusterError as exc:
        raise ConfigError(str(exc)) from None
    state = cluster.read_state(args.state_dir)
    if state is None:
        raise ConfigError(f"no cluster in {args.state_dir}; run: harness cluster up --hosts N")
    return state


def _guard(fn, *args, **kwargs):
    cluster = _cluster()
    try:
        return fn(*args, **kwargs)
    except (cluster.ClusterError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def cmd_up(args: argparse.Namespace) -> int:
    """Make (or keep) the cluster; print its hosts, files and the launch commands."""
    cluster = _cluster()
    spec = _guard(cluster.ClusterSpec, hosts=args.hosts, slots=args.slots, rate_gbit=args.rate, subnet=args.subnet,
                  state_dir=str(args.state_dir), prefix=args.prefix, cpus_per_host=args.cpus_per_host)
    state = _guard(cluster.up, spec)
    p = cluster.paths(spec.state_dir)
    rate = f", links shaped to {spec.rate_gbit:g} Gbit/s (tc tbf)" if spec.rate_gbit else ""
    print(f"cluster up: {spec.hosts} hosts × {spec.slots} slots on {spec.subnet}{rate}; state in {spec.state_dir}")
    for host, addr in spec.addresses.items():
        cpus = state.get("cpus", {}).get(host)
        print(f"  {host}  {addr}  namespace {spec.namespace(host)}  cpus {cluster.format_cpus(cpus) if cpus else 'all'}"
              f"  holder pid {state['holders'][host]}")
    print(f"hostfiles: {p['hostfile']} (host slots=N), {p['hosts']} (host:N)")
    print(f"ssh options: horovodrun {p['horovodrun_args'].read_text().strip()} | "
          f"mpirun {p['mpirun_args'].read_text().strip()}")
    print("launch from the first host (as from a login node):")
    for line in p["commands"].read_text().splitlines():
        print(f"  {line}")
    print(f"elastic jobs: --host-discovery-script {p['discover']} (harness cluster mark HOST down|up)")
    print(f"remove it: harness cluster down --state-dir {spec.state_dir}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Remove everything the cluster made (also after a crash)."""
    removed = _guard(_cluster().down, args.state_dir, prefix=args.prefix)
    print(f"cluster down: removed {len(removed)} item(s)" + "".join(f"\n  {item}" for item in removed))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print each host's health; exit 1 when one is not healthy."""
    report = _cluster().status(_state(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"cluster in {report['state_dir']}: {report['status']}, switch {'up' if report['switch'] else 'missing'}")
        for h in report["hosts"]:
            health = "healthy" if h["healthy"] else "NOT HEALTHY"
            print(f"  {h['host']}  {h['address']}  hostname={h['hostname']}  sshd={'up' if h['sshd'] else 'down'}  "
                  f"cpus={h['cpus'] or 'all'}  qdisc={h['qdisc'] or '-'}  {health}")
    return 0 if report["status"] == "up" and all(h["healthy"] for h in report["hosts"]) else 1


def cmd_exec(args: argparse.Namespace) -> int:
    """Run a command on a host (its namespaces, the cluster's ssh first on PATH); its exit code."""
    cluster = _cluster()
    state = _state(args)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise ConfigError("harness cluster exec HOST -- COMMAND: no command given")
    prefix = _guard(cluster.enter, state, args.host)
    return subprocess.run([*prefix, *argv], env=cluster.exec_env(state)).returncode


def cmd_link(args: argparse.Namespace) -> int:
    """Set a host's link up or down (failure injection)."""
    _guard(_cluster().set_link, _state(args), args.host, args.updown == "up")
    print(f"{args.host}: eth0 {args.updown}")
    return 0


def cmd_mark(args: argparse.Namespace) -> int:
    """Mark a host up or down in the elastic discovery script (the host itself stays as it is)."""
    listed = _guard(_cluster().mark, _state(args), args.host, args.updown == "up")
    print(f"{args.host}: marked {args.updown}; discovery lists {', '.join(listed) or 'no host'}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """SIGKILL every process on a host (failure injection)."""
    count = _guard(_cluster().kill_host, _state(args), args.host)
    print(f"{args.host}: killed {count} process(es)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``harness cluster``."""
    from testbed import DEFAULT_PREFIX, DEFAULT_STATE_DIR, DEFAULT_SUBNET

    cl = sub.add_parser("cluster", help="an emulated cluster of hosts on this machine (root; namespaces, sshd)")
    csub = cl.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    def action(name: str, help_: str, func):
        p = csub.add_parser(name, help=help_)
        p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help=f"default {DEFAULT_STATE_DIR}")
        p.set_defaults(func=func)
        return p

    upp = action("up", "make N hosts: namespaces, a switch, a CPU set and sshd per host, hostfiles, ssh options",
                 cmd_up)
    upp.add_argument("--hosts", type=int, required=True, metavar="N")
    upp.add_argument("--slots", type=int, default=1, metavar="S", help="slots per host in the hostfiles (default 1)")
    upp.add_argument("--rate", type=float, metavar="GBIT", help="shape each host's egress to GBIT Gbit/s (tc tbf)")
    upp.add_argument("--cpus-per-host", type=int, metavar="N",
                     help="CPUs in each host's CPU set, which everything on the host inherits (default: the "
                          "machine's CPUs split evenly over the hosts, at least 1 each)")
    upp.add_argument("--subnet", default=DEFAULT_SUBNET, metavar="CIDR", help=f"default {DEFAULT_SUBNET}")
    upp.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"namespace prefix (default {DEFAULT_PREFIX})")
    downp = action("down", "remove every namespace, process and file the cluster made", cmd_down)
    downp.add_argument("--prefix", help="namespace prefix to sweep when the state is gone (default: the state's)")
    action("status", "each host's health (exit 1 if one is not healthy)", cmd_status).add_argument(
        "--json", action="store_true")
    ex = action("exec", "run a command on a host: harness cluster exec node1 -- CMD", cmd_exec)
    ex.add_argument("host")
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD")
    ln = action("link", "set a host's link up or down (failure injection)", cmd_link)
    ln.add_argument("host")
    ln.add_argument("updown", choices=("up", "down"))
    action("kill", "SIGKILL every process on a host (failure injection; marks it down)", cmd_kill).add_argument("host")
    mk = action("mark", "list a host in STATE_DIR/discover-hosts.sh or leave it out (elastic jobs follow)", cmd_mark)
    mk.add_argument("host")
    mk.add_argument("updown", choices=("up", "down"))
