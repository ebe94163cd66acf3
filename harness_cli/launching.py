"""``--np/-H/--hostfile/--launcher/--launcher-args``: run a ``train`` or ``bench`` command as k workers.

``harness train --np 4 -H node1:2,node2:2 ...`` re-runs the same command under ``horovodrun`` (or
``mpirun``) with the launch options removed, the way a user would type the launcher by hand on a
login node. Without ``--np`` the command runs as it is (alone, or as one rank of an outer launcher).
The console shows rank 0's lines without launcher tags; every rank's output goes to
``OUT/logs/rank.<r>.log`` (:func:`harness.runtime.launch.run_with_rank_logs`).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from harness.runtime.config import check_at_least
from harness.runtime.errors import ConfigError
from harness.runtime.launch import CONTROLLERS, LAUNCHERS, elastic_launch_command, launch_command, run_with_rank_logs
from harness.runtime.records import LOGS, prepare_out_dir

VALUED = ("--np", "-H", "--hosts", "--hostfile", "--launcher", "--controller", "--launcher-args", "--min-workers",
          "--max-workers", "--host-discovery-script")


def add_launch_arguments(p: argparse.ArgumentParser) -> None:
    """The launch options of ``train`` and ``bench``."""
    g = p.add_argument_group("launch (run this command as --np workers)")
    g.add_argument("--np", type=int, metavar="K", help="launch K workers with --launcher (default: run as is)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("-H", "--hosts", help="host:slots,... for the launcher (default localhost:K)")
    where.add_argument("--hostfile", help="a hostfile (see hostfiles/README.md)")
    g.add_argument("--launcher", choices=LAUNCHERS, default="horovodrun", help="default: horovodrun")
    g.add_argument("--controller", choices=CONTROLLERS, help="horovodrun's controller (default: its choice)")
    g.add_argument("--launcher-args", metavar="'FLAGS'",
                   help="extra launcher flags as one argument, written --launcher-args='...': timeline, autotune, "
                        "ssh options, e.g. '--timeline-filename t.json' or \"-mca plm_rsh_args '-i KEY'\"")
    g.add_argument("--collective-timeout-s", type=int, metavar="S",
                   help="seconds a Gloo collective waits for a peer before the job fails "
                        "(HOROVOD_GLOO_TIMEOUT_SECONDS; Horovod's default 30)")


def relaunch(args: argparse.Namespace, argv: list[str]) -> int | None:
    """Run ``argv`` under the launcher if ``--np`` was given; its exit code, or None to run here.

    Raises:
        ConfigError: ``--np`` < 1.
    """
    check_at_least("np", args.np, 1)
    if args.np is None:
        return None
    worker = args.worker(args)  # the subcommand's job file and ``python -m harness.runtime.worker`` command
    elastic = getattr(args, "elastic", False)
    if elastic:
        cmd = _elastic_command(args, worker)
    else:
        cmd = launch_command(worker, launcher=args.launcher, np=args.np, hosts=args.hosts, hostfile=args.hostfile,
                             controller=args.controller, extra=shlex.split(args.launcher_args or ""), tag_output=True)
    print(f"harness: launching: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    if elastic or getattr(args, "out", None) is None:  # elastic ranks change; their output passes through
        return subprocess.run(cmd).returncode
    return run_with_rank_logs(cmd, Path(args.out) / LOGS, np=args.np, append=bool(getattr(args, "resume", False)))


def _elastic_command(args: argparse.Namespace, worker: list[str]) -> list[str]:
    """horovodrun's elastic command for ``train --elastic``, after the checks no worker can make.

    Elastic workers make no collective call before Horovod's first sync, so the run directory is
    claimed here, in the launching process, before any worker starts.

    Raises:
        ConfigError: a missing bound or script, a host list or MPI (elastic jobs find their hosts
            through the script and run on Gloo), a bad flag, or a run directory with files.
    """
    from harness_cli.train import recipe_spec, run_config

    if args.hosts or args.hostfile or args.launcher != "horovodrun" or args.controller == "mpi":
        raise ConfigError("--elastic finds hosts with --host-discovery-script and runs horovodrun with Gloo: "
                          "drop -H/--hostfile/--launcher mpirun/--controller mpi")
    for flag in ("min_workers", "max_workers", "host_discovery_script"):
        if getattr(args, flag) is None:
            raise ConfigError(f"--elastic needs --{flag.replace('_', '-')}")
    run_config(args), recipe_spec(args)  # every flag checked before anything is launched
    problem = prepare_out_dir(Path(args.out), args.overwrite)
    if problem:
        raise ConfigError(problem)
    try:
        return elastic_launch_command(worker, np=args.np, min_np=args.min_workers, max_np=args.max_workers,
                                      discovery_script=args.host_discovery_script,
                                      extra=shlex.split(args.launcher_args or ""))
    except ValueError as exc:
        raise ConfigError(f"--elastic: {exc}") from None
