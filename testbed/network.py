"""The hosts' network: a namespace per host, a veth ``eth0`` into a bridge in a switch namespace, tc tbf.

Horovod needs one interface name common to all hosts (else ``NoValidAddressesFound``), so each host's
end of its veth is named ``eth0``. Gloo resolves each host's own hostname, so every host gets
``/etc/netns/NS/hosts`` naming all of them: ``ip netns exec NS`` mounts it over ``/etc/hosts`` for what
it starts, and the machine's own ``/etc/hosts`` is not touched. The machine's own network namespace gets
no interface: traffic stays on loopback and on the hosts' addresses.
"""

from __future__ import annotations

from pathlib import Path

from testbed.spec import ClusterSpec, sh

NETNS_ETC = Path("/etc/netns")


def namespaces() -> list[str]:
    """Every network namespace on the machine (``ip netns list``)."""
    return [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def namespace_pids(ns: str) -> list[int]:
    """The processes whose network namespace is ``ns``."""
    return [int(p) for p in sh("ip", "netns", "pids", ns, check=False).stdout.split() if p.isdigit()]


def write_netns_hosts(spec: ClusterSpec) -> None:
    """``/etc/netns/NS/hosts`` per host: localhost and every host's name and address."""
    lines = "127.0.0.1\tlocalhost\n::1\tlocalhost\n" + "".join(f"{a}\t{h}\n" for h, a in spec.addresses.items())
    for host in spec.names:
        d = NETNS_ETC / spec.namespace(host)
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts").write_text(lines)


def make_network(spec: ClusterSpec) -> None:
    """The switch namespace with ``br0``; per host a namespace, a veth ``eth0``↔``pI`` and optional tbf.

    Raises:
        ClusterError: a step failed (the message names the command).
    """
    sw = spec.switch
    sh("ip", "netns", "add", sw)
    sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", sw, "link", "set", "br0", "up")
    for i, host in enumerate(spec.names, start=1):
        ns = spec.namespace(host)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", sw, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{spec.addresses[host]}/{spec.prefixlen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        if spec.rate_gbit:
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", *tbf_args(spec.rate_gbit))


def tbf_args(rate_gbit: float) -> list[str]:
    """``tbf rate R burst B latency 50ms`` for a rate in Gbit/s: burst 4 ms of traffic, at least 256 KiB.

    ``tbf`` is what this kernel offers; ``netem`` (delay) and ``fq_codel`` may be missing.
    """
    rate_bytes = rate_gbit * 1e9 / 8
    return ["tbf", "rate", f"{round(rate_gbit * 1000)}mbit", "burst", f"{max(256 * 1024, int(rate_bytes * 0.004))}",
            "latency", "50ms"]


def qdisc(ns: str) -> str:
    """The root qdisc of ``eth0`` in ``ns`` (``tc qdisc show``, up to ``refcnt``), empty when none is shown."""
    out = sh("ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", "eth0", check=False).stdout.strip()
    return out.split(" refcnt")[0]


def set_eth0(ns: str, up: bool) -> None:
    """Set ``eth0`` in ``ns`` up or down (a pulled cable)."""
    sh("ip", "-n", ns, "link", "set", "eth0", "up" if up else "down")
