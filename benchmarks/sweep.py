"""Run one job (training or a benchmark) at several world sizes, each under a launcher.

``harness sweep --world-sizes 1,2,4 --out DIR -- bench throughput ...`` builds the job from the command
and calls :func:`run_sweep`, which writes ``DIR/k1/job.json`` and runs it as k workers
(``python -m harness.runtime.worker``), then ``DIR/k2``, ..., and stops at the first world size that
fails, naming it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.runtime.errors import ConfigError, RunFailure
from harness.runtime.hostfile import parse_hostfile
from harness.runtime.launch import launch_command
from harness.runtime.records import JOB, SUMMARY, prepare_out_dir
from harness.runtime.worker import job_to_dict, worker_command, write_job


def parse_world_sizes(text: str) -> list[int]:
    """``"1,2,4"`` → [1, 2, 4], sorted and unique.

    Raises:
        ConfigError: not integers, or one below 1.
    """
    try:
        sizes = sorted({int(k) for k in text.split(",")})
    except ValueError:
        raise ConfigError(f"world_sizes must be integers like 1,2,4, got {text!r}", fields=("world_sizes",)) from None
    if sizes[0] < 1:
        raise ConfigError(f"world sizes must be >= 1, got {sizes[0]}")
    return sizes


def check_hostfile(hostfile: str, largest: int) -> None:
    """Raise :class:`ConfigError` if ``hostfile`` is missing, invalid, or has fewer slots than ``largest``."""
    parsed = parse_hostfile(hostfile) if Path(hostfile).is_file() else None
    if parsed is None or parsed.problems:
        raise ConfigError(f"hostfile {hostfile}: " + ("not found" if parsed is None else parsed.problems[0]),
                          fields=("hostfile",))
    if largest > parsed.total_slots:
        raise ConfigError(f"world size {largest} exceeds the {parsed.total_slots} slots in {hostfile}")


def run_sweep(job_at: Callable[[Path], object], world_sizes: list[int], out: Path, *, launcher: str = "horovodrun",
              hosts: str | None = None, hostfile: str | None = None, controller: str | None = None,
              launcher_args: list[str] | tuple = (), overwrite: bool = False) -> list[Path]:
    """Run the job ``job_at(out/k<k>)`` as k workers at each world size in turn.

    Args:
        job_at: the job (:mod:`harness.runtime.worker`: a ``TrainJob``, ``ThroughputJob``, ``AllreduceJob``)
            writing its run directory to the path it is given.
        world_sizes: k values, run in this order.
        out: the sweep directory (new or empty unless ``overwrite``).
        launcher, hosts, hostfile, controller: as :func:`harness.runtime.launch.launch_command`.
        launcher_args: extra launcher flags (timeline, autotune, ssh options), passed through.

    Returns:
        The run directories, one per world size.

    Raises:
        ConfigError: a bad job, hostfile or ``out``.
        RunFailure: a world size failed; the message names it and those that finished.
    """
    jobs = {k: job_at(out / f"k{k}") for k in world_sizes}  # every job checked before anything runs
    if hostfile:
        check_hostfile(hostfile, max(world_sizes))
    problem = prepare_out_dir(out, overwrite)
    if problem:
        raise ConfigError(problem, fields=("out", "overwrite"))
    done = []
    for k in world_sizes:
        job_file = write_job(jobs[k], out / f"k{k}" / JOB)
        cmd = launch_command(worker_command(job_file), launcher=launcher, np=k, hosts=hosts or f"localhost:{k}",
                             hostfile=hostfile, controller=controller, extra=list(launcher_args))
        print(f"== sweep: world size {k}: {' '.join(cmd)}", flush=True)
        code = subprocess.run(cmd).returncode
        if code != 0 or not (out / f"k{k}" / SUMMARY).exists():
            raise RunFailure(f"sweep stopped: world size {k} failed (exit code {code}; its output is above); "
                             f"finished: {', '.join(map(str, done)) or 'none'}")
        done.append(k)
    first = job_to_dict(jobs[world_sizes[0]])
    (out / "sweep.json").write_text(json.dumps({"world_sizes": world_sizes, "launcher": launcher,
                                                "kind": first["kind"], "job": first}, indent=2) + "\n")
    return [out / f"k{k}" for k in world_sizes]
