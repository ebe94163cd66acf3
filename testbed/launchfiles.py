"""What launchers need from the cluster: hostfiles, ssh options, example commands, the discovery script."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from testbed.spec import ClusterSpec, paths


def launcher_ssh_args(spec: ClusterSpec) -> dict[str, list[str]]:
    """The ssh options each launcher needs: ``horovodrun`` (``--ssh-identity-file``/``--ssh-port``) and
    ``mpirun`` (``-mca plm_rsh_args '...'``, the ssh arguments Open MPI's rsh launcher adds)."""
    p = paths(spec.state_dir)
    rsh = f"-F {p['ssh_config']} -i {p['key']} -p {spec.ssh_port}"
    return {"horovodrun": ["--ssh-identity-file", str(p["key"]), "--ssh-port", str(spec.ssh_port)],
            "mpirun": ["-mca", "plm_rsh_args", rsh]}


def harness_command() -> str:
    """The ``harness`` beside this interpreter when there is one, else ``harness`` from ``PATH``."""
    beside = Path(sys.executable).parent / "harness"
    return str(beside) if beside.exists() else "harness"


def launch_examples(spec: ClusterSpec) -> list[str]:
    """The exact commands that launch across the cluster from its first host (as from a login node)."""
    p, ssh, first, k = paths(spec.state_dir), launcher_ssh_args(spec), spec.names[0], spec.hosts * spec.slots
    harness, hosts = harness_command(), p["hosts"].read_text().strip()
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


def write_launch_files(spec: ClusterSpec) -> None:
    """Both hostfile dialects, the launchers' ssh options, ``commands.txt`` and the discovery script."""
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
