"""Run one ``harness`` subcommand at several world sizes, each under a launcher.

``harness sweep --world-sizes 1,2,4 --out DIR -- bench throughput ...`` writes ``DIR/k1``,
``DIR/k2``, ... and stops at the first world size that fails, naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.runtime.errors import ConfigError, RunFailure
from harness.runtime.hostfile import parse_hostfile
from harness.runtime.launch import launch_command
from harness.runtime.records import SUMMARY, prepare_out_dir

COMMANDS = ("bench", "train")


def parse_world_sizes(text: str) -> list[int]:
    """``"1,2,4"`` → [1, 2, 4], sorted and unique.

    Raises:
        ConfigError: not integers, or one below 1.
    """
    try:
        sizes = sorted({int(k) for k in text.split(",")})
    except ValueError:
        raise ConfigError(f"--world-sizes must be integers like 1,2,4, got {text!r}") from None
    if sizes[0] < 1:
        raise ConfigError(f"world sizes must be >= 1, got {sizes[0]}")
    return sizes


def check_command(command: list[str]) -> list[str]:
    """The subcommand to sweep, without a leading ``--``.

    Raises:
        ConfigError: no bench/train command, or an ``--out`` inside it.
    """
    command = command[1:] if command[:1] == ["--"] else list(command)
    if not command or command[0] not in COMMANDS:
        raise ConfigError("sweep needs a command after --: 'bench throughput ...', 'bench allreduce ...' or 'train ...'")
    if "--out" in command:
        raise ConfigError("give --out to sweep, not to the command: each world size writes DIR/k<k>")
    return command


def check_hostfile(hostfile: str, largest: int) -> None:
    """Raise :class:`ConfigError` if ``hostfile`` is missing, invalid, or has fewer slots than ``largest``."""
    parsed = parse_hostfile(hostfile) if Path(hostfile).is_file() else None
    if parsed is None or parsed.problems:
        raise ConfigError(f"--hostfile {hostfile}: " + ("not found" if parsed is None else parsed.problems[0]))
    if largest > parsed.total_slots:
        raise ConfigError(f"world size {largest} exceeds the {parsed.total_slots} slots in {hostfile}")


def run_sweep(command: list[str], world_sizes: list[int], out: Path, *, launcher: str = "horovodrun",
              hosts: str | None = None, hostfile: str | None = None, controller: str | None = None,
              launcher_args: list[str] | tuple = (), overwrite: bool = False) -> list[Path]:
    """Run ``harness COMMAND --out out/k<k>`` at each world size in turn.

    Args:
        command: the subcommand and its flags, e.g. ``["bench", "throughput", "--model", "mlp"]``.
        world_sizes: k values, run in this order.
        out: the sweep directory (new or empty unless ``overwrite``).
        launcher, hosts, hostfile, controller: as :func:`harness.runtime.launch.launch_command`.
        launcher_args: extra launcher flags (timeline, autotune, ssh options), passed through.

    Returns:
        The run directories, one per world size.

    Raises:
        ConfigError: a bad command, hostfile or ``out``.
        RunFailure: a world size failed; the message names it and those that finished.
    """
    command = check_command(command)
    if hostfile:
        check_hostfile(hostfile, max(world_sizes))
    problem = prepare_out_dir(out, overwrite)
    if problem:
        raise ConfigError(problem)
    done = []
    for k in world_sizes:
        argv = [sys.executable, "-m", "harness_cli", *command, "--out", str(out / f"k{k}"),
                *(["--overwrite"] if overwrite else [])]
        cmd = launch_command(argv, launcher=launcher, np=k, hosts=hosts or f"localhost:{k}", hostfile=hostfile,
                             controller=controller, extra=list(launcher_args))
        print(f"== sweep: world size {k}: {' '.join(cmd)}", flush=True)
        code = subprocess.run(cmd).returncode
        if code != 0 or not (out / f"k{k}" / SUMMARY).exists():
            raise RunFailure(f"sweep stopped: world size {k} failed (exit code {code}; its output is above); "
                             f"finished: {', '.join(map(str, done)) or 'none'}")
        done.append(k)
    (out / "sweep.json").write_text(json.dumps({"world_sizes": world_sizes, "launcher": launcher,
                                                "command": command}, indent=2) + "\n")
    return [out / f"k{k}" for k in world_sizes]
