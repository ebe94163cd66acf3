"""What needs no root: naming lost hosts from the placement, the cluster spec's checks, tbf and ssh arguments,
the hosts' CPU sets."""

from __future__ import annotations

import pytest

from harness.runtime.faults import describe_lost_peers
from testbed import ClusterSpec, cpu_sets, format_cpus, launcher_ssh_args, parse_cpus, tbf_args


def test_lost_peers_are_named_by_host_from_the_placement():
    assert describe_lost_peers(["node1", "node2"], 0) == "lost contact with host node2 (rank 1)"
    assert describe_lost_peers(["node1", "node2"], 1) == "lost contact with host node1 (rank 0)"
    assert describe_lost_peers(["n1", "n1", "n2", "n3", "n3"], 0) == (
        "lost contact with one of the hosts n2 (rank 2), n3 (ranks 3, 4), n1 (rank 1, this host)")
    assert describe_lost_peers(None, 0) == describe_lost_peers(["n1"], 0) == "the launcher's output names it"


def test_spec_names_hosts_and_addresses_and_rejects_bad_values():
    spec = ClusterSpec(hosts=3, subnet="192.168.50.0/29", prefix="abc-", state_dir="/tmp/s")
    assert spec.addresses == {"node1": "192.168.50.1", "node2": "192.168.50.2", "node3": "192.168.50.3"}
    assert [spec.namespace(h) for h in spec.names] + [spec.switch] == ["abc-node1", "abc-node2", "abc-node3",
                                                                       "abc-switch"]
    for kwargs, message in (({"hosts": 0}, "--hosts must be an integer in 1..64"), ({"slots": 65}, "--slots"),
                            ({"rate_gbit": 0}, "--rate must be in (0, 100]"), ({"subnet": "10.0.0.300/24"}, "IPv4"),
                            ({"hosts": 7, "subnet": "10.0.0.0/29"}, "fewer than 7"), ({"prefix": "Bad"}, "prefix"),
                            ({"state_dir": "/tmp/a b"}, "--state-dir must be a path without spaces"),
                            ({"cpus_per_host": 0}, "--cpus-per-host must be a positive integer, got 0")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
            ClusterSpec(**kwargs)


def test_tbf_burst_is_4_ms_of_traffic_and_at_least_256_kib():
    assert tbf_args(1) == ["tbf", "rate", "1000mbit", "burst", "500000", "latency", "50ms"]
    assert tbf_args(0.5) == ["tbf", "rate", "500mbit", "burst", str(256 * 1024), "latency", "50ms"]
    assert tbf_args(2) == ["tbf", "rate", "2000mbit", "burst", "1000000", "latency", "50ms"]


def test_launcher_ssh_arguments_point_into_the_state_directory():
    args = launcher_ssh_args(ClusterSpec(state_dir="/tmp/s", ssh_port=2222))
    assert args["horovodrun"] == ["--ssh-identity-file", "/tmp/s/ssh/id_ed25519", "--ssh-port", "2222"]
    assert args["mpirun"] == ["-mca", "plm_rsh_args", "-F /tmp/s/ssh/ssh_config -i /tmp/s/ssh/id_ed25519 -p 2222"]


@pytest.mark.parametrize("hosts, per_host, available, expected", [
    (2, None, [0, 1], [[0], [1]]),  # this machine: one core each
    (3, None, [0, 1], [[0], [1], [0]]),  # more hosts than CPUs: at least 1 each, shared round the ring
    (2, None, [0, 1, 2, 3, 4, 5, 6, 7], [[0, 1, 2, 3], [4, 5, 6, 7]]),
    (3, None, [0, 1, 2, 3, 4, 5, 6, 7], [[0, 1], [2, 3], [4, 5]]),  # an even split leaves the rest idle
    (2, 2, [0, 1], [[0, 1], [0, 1]]),  # every host on every CPU: the machine as it was before CPU sets
    (3, 3, [2, 4, 6, 8], [[2, 4, 6], [2, 8, 4], [6, 8, 2]]),  # only the CPUs this process may use
])
def test_cpu_sets_split_the_available_cpus_evenly(hosts, per_host, available, expected):
    names = [f"node{i}" for i in range(1, hosts + 1)]
    assert cpu_sets(names, per_host, available) == dict(zip(names, map(sorted, expected)))


def test_cpu_sets_reject_more_cpus_than_available_and_lists_round_trip():
    with pytest.raises(ValueError, match=r"--cpus-per-host 3 is more than the 2 CPUs .* \(0-1\)"):
        cpu_sets(["node1"], 3, [0, 1])
    for cpus, text in (([0], "0"), ([0, 1, 2, 5], "0-2,5"), ([1, 3, 4, 5, 9, 10], "1,3-5,9-10")):
        assert format_cpus(cpus) == text and parse_cpus(text) == cpus
