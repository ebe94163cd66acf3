"""An emulated cluster on one machine: N hosts that ``horovodrun`` and ``mpirun`` launch across over ssh.

Root-only tooling for trying multi-host runs, not part of the runtime: nothing under ``harness``,
``backends`` or ``benchmarks`` imports it; ``harness cluster`` (``harness_cli.cluster``) drives it
(``tests/runtime/test_layers.py`` checks the direction).

Each host is a network namespace ``<prefix>nodeI`` with one veth end named ``eth0`` into a switch, a
bridge ``br0`` in a namespace of its own (``<prefix>switch``), so the machine's own network is never
touched (:mod:`testbed.network`); ``tc tbf`` optionally shapes each host's egress to a link rate. A
long-lived holder process per host owns the host's hostname and ``/etc/hosts`` (:mod:`testbed.hosts`),
and each host has its own CPU set, which everything started on it inherits (:mod:`testbed.cpus`).
One ``sshd`` per host listens on the host's address with keys made for the cluster (:mod:`testbed.sshd`);
ranks launched over ssh therefore see the host's name, address and CPUs. :mod:`testbed.launchfiles`
writes the hostfiles, the launchers' ssh options and an elastic discovery script;
:mod:`testbed.cluster` makes, checks and removes the whole, and breaks hosts for failure drills.

What this rests on, as seen on a Debian machine with root:

- Horovod needs an interface name common to all hosts (``NoValidAddressesFound ... at least one
  routable network interface with the same name`` otherwise): every host's end is called ``eth0``.
- Gloo resolves each host's own hostname (``gloo::EnforceNotMet ... Unable to find address for:
  node1`` otherwise): ``ip netns exec NS`` mounts ``/etc/netns/NS/hosts`` over ``/etc/hosts``.
- A host's link set down mid-allreduce ends the job only after Gloo's collective timeout (30 s by
  default), and nothing in Horovod's output names the lost host.
- ``tc tbf`` shapes a link to within a few percent of its rate; ``netem`` and ``fq_codel`` may be
  missing from the kernel.
- Without CPU sets every host believes it owns every core and oversubscribes the machine: a 2-host
  ``resnet-small`` run with default flags on a 2-core machine took 6-9x longer per step with both hosts
  on both cores than with one core per host.
"""

from testbed.cluster import down, kill_host, mark, set_link, status, up
from testbed.cpus import cpu_sets, format_cpus, parse_cpus
from testbed.hosts import enter, exec_env
from testbed.launchfiles import launch_examples, launcher_ssh_args, write_discovered
from testbed.network import namespace_pids, namespaces, tbf_args
from testbed.spec import (
    DEFAULT_PREFIX,
    DEFAULT_STATE_DIR,
    DEFAULT_SUBNET,
    ClusterError,
    ClusterSpec,
    paths,
    preflight,
    read_state,
    spec_of,
)

__all__ = ["DEFAULT_PREFIX", "DEFAULT_STATE_DIR", "DEFAULT_SUBNET", "ClusterError", "ClusterSpec", "cpu_sets",
           "down", "enter", "exec_env", "format_cpus", "kill_host", "launch_examples", "launcher_ssh_args", "mark",
           "namespace_pids", "namespaces", "parse_cpus", "paths", "preflight", "read_state", "set_link", "spec_of",
           "status", "tbf_args", "up", "write_discovered"]
