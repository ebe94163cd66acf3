"""Build ``horovodrun`` and ``mpirun`` command lines for k workers, and run them with clean output.

Used by ``harness sweep``, ``make demo`` and the multi-process tests, so that every launch in the
project goes through one place. Follows Horovod's documented ``mpirun`` form
(``-bind-to none -map-by slot -x VAR``).

:func:`run_with_rank_logs` runs such a command the way ``harness train --np`` and ``make demo`` do: the
console gets rank 0's lines and the launcher's own, without launcher tags or lines joined across ranks
and streams; every rank's output goes to ``rank.<r>.log`` in a log directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
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
                   hostfile: str | None = None, controller: str | None = None, extra: list[str] | None = None,
                   tag_output: bool = False) -> list[str]:
    """The command that runs ``argv`` as ``np`` Horovod workers.

    Args:
        argv: the worker command, e.g. ``[sys.executable, "-m", "harness.runtime.worker", "run/job.json"]``
            (:func:`harness.runtime.worker.worker_command`).
        launcher: ``"horovodrun"`` or ``"mpirun"``.
        np: k, number of processes.
        hosts: ``host:slots,...`` (horovodrun ``-H``; mpirun ``-H`` too). Default
            ``localhost:np``.
        hostfile: a hostfile path (see ``hostfiles/README.md``); overrides ``hosts``.
        controller: horovodrun's ``"gloo"`` or ``"mpi"`` controller; ``None`` lets horovodrun
            choose. Ignored by mpirun (always MPI).
        extra: launcher flags passed through before the worker command (``--timeline-filename``,
            ``--autotune``, ssh options, ``-mca ...``).
        tag_output: mpirun prefixes every piece of output with ``[job,rank]<stream>:`` (``--tag-output``),
            which :func:`run_with_rank_logs` needs. horovodrun tags its output always.

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
            *(["--tag-output"] if tag_output else []), *forwarded, *(extra or []), *argv]


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


# -- clean console output -------------------------------------------------------------------------
RANK_LOGS_VARIABLE = "HARNESS_RANK_LOGS"  # set for the workers to the log directory (the summary line names it)
# horovodrun's tag ``[rank]<stream>:`` (Gloo) and mpirun's ``[job,rank]<stream>:`` (--tag-output, also under
# horovodrun --mpi), with the time first if the launcher was asked for one. Open MPI tags every piece of
# output it forwards, so a line written in two pieces arrives as two tagged pieces, maybe with another
# rank's output between them.
_TIME = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}"  # time.asctime()
_TAG = re.compile(rf"(?:{_TIME})?\[(?:\d+,)?(\d+)\]<(stdout|stderr|stddiag)>:")


class RankLines:
    """Reassembles whole lines per rank and stream from a launcher's tagged output.

    Each piece after a tag is appended to that rank's and stream's unfinished line; a newline ends the
    line of the piece before it. Text before the first tag is the launcher's own.
    """

    def __init__(self):
        self.partial: dict[tuple[int, str], str] = {}

    def feed(self, line: str) -> list[tuple[int | None, str | None, str]]:
        """The lines that one line of launcher output (without its newline) completes.

        Returns:
            ``(rank, stream, text)`` for each complete line; rank and stream are None for the launcher's.
        """
        tags = list(_TAG.finditer(line))
        if not tags:
            return [(None, None, line)]
        done = [(None, None, line[:tags[0].start()])] if tags[0].start() else []
        for tag, after in zip(tags, [*tags[1:], None]):
            key = (int(tag.group(1)), tag.group(2))
            self.partial[key] = self.partial.get(key, "") + line[tag.end():after.start() if after else len(line)]
        return [*done, (*key, self.partial.pop(key))]

    def rest(self) -> list[tuple[int, str, str]]:
        """Lines never ended by a newline, when the launcher has exited."""
        rest = [(rank, stream, text) for (rank, stream), text in sorted(self.partial.items()) if text]
        self.partial.clear()
        return rest


class _Sinks:
    """The console and the per-rank log files (opened when a rank first writes), behind one lock."""

    def __init__(self, log_dir: Path, console_rank: int):
        self.log_dir, self.console_rank = log_dir, console_rank
        self.files: dict[str, object] = {}
        self.lines, self.lock = RankLines(), threading.Lock()

    def write(self, name: str, text: str) -> None:
        if name not in self.files:
            self.files[name] = open(self.log_dir / name, "a", encoding="utf-8")
        self.files[name].write(text + "\n")
        self.files[name].flush()

    def route(self, pieces, console) -> None:
        for rank, stream, text in pieces:
            self.write("launcher.log" if rank is None else f"rank.{rank}.log", text)
            if rank is None or rank == self.console_rank:
                out = console if rank is None else (sys.stdout if stream == "stdout" else sys.stderr)
                out.write(text + "\n")  # one write: nothing else can land inside the line
                out.flush()

    def pump(self, pipe, console) -> None:
        for line in pipe:
            with self.lock:
                self.route(self.lines.feed(line.rstrip("\n")), console)

    def close(self) -> None:
        with self.lock:
            self.route(self.lines.rest(), sys.stderr)
            for f in self.files.values():
                f.close()


def run_with_rank_logs(cmd: list[str], log_dir: Path, *, np: int | None = None, append: bool = False,
                       console_rank: int = 0) -> int:
    """Run a launcher command with rank ``console_rank``'s lines and the launcher's own on this console.

    Every line of rank r, stdout and stderr in the order they arrive, goes to ``log_dir/rank.<r>.log``,
    the launcher's own lines (and ``cmd``) to ``log_dir/launcher.log``; the workers find ``log_dir`` in
    :data:`RANK_LOGS_VARIABLE`. If the job fails, the last lines of the other ranks' logs are printed too.

    Args:
        cmd: a :func:`launch_command` (``tag_output=True`` for mpirun) or another tagged launch.
        log_dir: created if missing; the logs of an earlier launch are replaced unless ``append``.
        np: k; ``rank.<r>.log`` is created for every rank r < k, also for ranks that print nothing.
        append: add to the logs of an earlier launch (a resumed run).
        console_rank: the rank whose lines the console shows.

    Returns:
        The launcher's exit code.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    if not append:
        for old in [*log_dir.glob("rank.*.log"), log_dir / "launcher.log"]:
            old.unlink(missing_ok=True)
    for rank in range(np or 0):
        (log_dir / f"rank.{rank}.log").touch()
    sinks = _Sinks(log_dir, console_rank)
    sinks.write("launcher.log", "$ " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            env={**os.environ, RANK_LOGS_VARIABLE: str(log_dir)})
    pumps = [threading.Thread(target=sinks.pump, args=(pipe, console), daemon=True)
             for pipe, console in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr))]
    for pump in pumps:
        pump.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    for pump in pumps:
        pump.join()
    sinks.close()
    if code != 0:
        _print_tails(log_dir, console_rank)
    return code


def _print_tails(log_dir: Path, console_rank: int, lines: int = 8) -> None:
    """After a failure: the last lines of every other rank's log, which the console did not show."""
    for log in sorted(log_dir.glob("rank.*.log"), key=lambda p: int(p.name.split(".")[1])):
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        if log.name != f"rank.{console_rank}.log" and tail:
            print(f"harness: the last lines of {log}:", *(f"  {line}" for line in tail), sep="\n", file=sys.stderr)
    print(f"harness: every rank's output is in {log_dir}/rank.<r>.log", file=sys.stderr, flush=True)


def rank_logs_note() -> str:
    """`` | every rank's output: DIR/rank.<r>.log`` for the summary line of a job started by
    :func:`run_with_rank_logs`; empty otherwise."""
    log_dir = os.environ.get(RANK_LOGS_VARIABLE)
    return f" | every rank's output: {log_dir}/rank.<r>.log" if log_dir else ""
