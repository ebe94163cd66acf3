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
# Variables every rank needs on remote hosts too; mpirun forwards them with -x, together with every
# HOROVOD_*, NCCL_* and HARNESS_* variable set (horovodrun forwards the environment itself).
FORWARDED_ENV = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS")
FORWARDED_PREFIXES = ("HOROVOD_", "NCCL_", "HARNESS_")


def forwarded_variables(environ=None) -> list[str]:
    """The names mpirun must forward with ``-x``: :data:`FORWARDED_ENV` and every variable with a
    prefix in :data:`FORWARDED_PREFIXES`, in a stable order."""
    environ = os.environ if environ is None else environ
    prefixed = sorted(name for name in environ if name.startswith(FORWARDED_PREFIXES))
    return [name for name in FORWARDED_ENV if name in environ] + prefixed


def _tool(name: str) -> str:
    """Prefer the tool next to this interpreter (the project's .venv), then PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def launch_command(argv: list[str], *, launcher: str, np: int, hosts: str | None = None,
                   hostfile: str | None = None, controller: str | None = None, extra: list[str] | None = None
                   ) -> list[str]:
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
        extra: launcher flags passed through before the worker command (``--timeline-filename``,
            ``--autotune``, ssh options, ``-mca ...``).

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
        return [_tool("horovodrun"), "-np", str(np), *where, *([f"--{controller}"] if controller else []),
                *(extra or []), *argv]
    root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    forwarded = [arg for name in forwarded_variables() for arg in ("-x", name)]
    return [_tool("mpirun"), "-np", str(np), *where, *root, "--bind-to", "none", "--map-by", "slot",
            *forwarded, *(extra or []), *argv]


def without_options(argv: list[str], valued: tuple[str, ...], flags: tuple[str, ...] = ()) -> list[str]:
    """``argv`` with the options in ``valued`` (and their values, ``--opt v`` or ``--opt=v``) and the
    boolean ``flags`` removed: how a command re-runs itself under a launcher without its launch options."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in valued:
            skip = "=" not in arg
            continue
        if arg in flags:
            continue
        out.append(arg)
    return out


def elastic_launch_command(argv: list[str], *, np: int, min_np: int, max_np: int, discovery_script: str,
                           extra: list[str] | None = None) -> list[str]:
    """The ``horovodrun`` command of an elastic job (Gloo controller; MPI has no elastic mode).

    Args:
        argv: the worker command.
        np: workers to start with; ``min_np <= np <= max_np``.
        min_np, max_np: the job runs while at least ``min_np`` workers are up and grows to ``max_np``.
        discovery_script: an executable printing one ``host:slots`` line per usable host (Horovod runs
            it every second; ``harness cluster`` writes one for its hosts).
        extra: more horovodrun flags (ssh options, ``--network-interface``, ``--elastic-timeout``).

    Raises:
        ValueError: bounds out of order or below 1, or a discovery script that is not an executable file.
    """
    for name, value in (("np", np), ("min_np", min_np), ("max_np", max_np)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not min_np <= np <= max_np:
        raise ValueError(f"elastic bounds need min <= np <= max, got {min_np} <= {np} <= {max_np}")
    script = Path(discovery_script)
    if not script.is_file() or not os.access(script, os.X_OK):
        raise ValueError(f"host discovery script {discovery_script} is not an executable file")
    return [_tool("horovodrun"), "-np", str(np), "--min-np", str(min_np), "--max-np", str(max_np),
            "--host-discovery-script", str(script.resolve()), "--gloo", *(extra or []), *argv]
