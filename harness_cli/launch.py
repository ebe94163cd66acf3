"""Build ``horovodrun`` and ``mpirun`` command lines for k workers.

Used by ``harness sweep``, ``make demo`` and the multi-process tests, so that every launch in the
project goes through one place. Follows Horovod's documented ``mpirun`` form
(``-bind-to none -map-by slot -x VAR``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

LAUNCHERS = ("horovodrun", "mpirun")
CONTROLLERS = ("gloo", "mpi")
# Variables every rank needs on remote hosts too; mpirun forwards them with -x.
FORWARDED_ENV = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS",
                 "HOROVOD_FUSION_THRESHOLD", "HOROVOD_CYCLE_TIME", "HOROVOD_LOG_LEVEL", "NCCL_DEBUG")


def _tool(name: str) -> str:
    """Prefer the tool next to this interpreter (the project's .venv), then PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def launch_command(argv: list[str], *, launcher: str, np: int, hosts: str | None = None,
                   hostfile: str | None = None, controller: str | None = None) -> list[str]:
    """The command that runs ``argv`` as ``np`` Horovod workers.

    Args:
        argv: the worker command, e.g. ``[sys.executable, "-m", "harness_cli", "train", ...]``.
        launcher: ``"horovodrun"`` or ``"mpirun"``.
        np: k, number of processes.
        hosts: ``host:slots,...`` (horovodrun ``-H``; mpirun ``-H`` too). Default
            ``localhost:np``.
        hostfile: a hostfile path (see ``hostfiles/README.md``); overrides ``hosts``.
        controller: horovodrun's ``"gloo"`` or ``"mpi"`` controller; ``None`` lets horovodrun
            choose. Ignored by mpirun (always MPI).

    Returns:
        The argument list for :func:`subprocess.run`.

    Raises:
        ValueError: unknown launcher or controller, or ``np < 1``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    if controller not in (None, *CONTROLLERS):
        raise ValueError(f"controller must be one of {', '.join(CONTROLLERS)}, got {controller!r}")
    if isinstance(np, bool) or not isinstance(np, int) or np < 1:
        raise ValueError(f"np must be an integer >= 1, got {np!r}")
    where = ["--hostfile", hostfile] if hostfile else ["-H", hosts or f"localhost:{np}"]
    if launcher == "horovodrun":
        return [_tool("horovodrun"), "-np", str(np), *where, *([f"--{controller}"] if controller else []), *argv]
    root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    forwarded = [arg for name in FORWARDED_ENV if name in os.environ for arg in ("-x", name)]
    return [_tool("mpirun"), "-np", str(np), *where, *root, "--bind-to", "none", "--map-by", "slot",
            *forwarded, *argv]
