"""``harness sweep``: one bench or train command at each world size under a launcher.

The command after ``--`` is parsed here, with ``harness``'s own parser, into a job
(:mod:`harness.runtime.worker`); :func:`benchmarks.sweep.run_sweep` runs it at each world size.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from harness.runtime.errors import ConfigError
from harness.runtime.launch import CONTROLLERS, LAUNCHERS

COMMANDS = ("bench", "train")


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


def job_builder(command: list[str], overwrite: bool):
    """``out -> job``: the job ``harness COMMAND --out out`` would run, for :func:`benchmarks.sweep.run_sweep`."""
    from harness_cli.bench import JOBS
    from harness_cli.main import build_parser
    from harness_cli.train import train_job

    args = build_parser().parse_args([*check_command(command), "--out", "."])
    build = train_job if args.command == "train" else JOBS[args.bench_command]
    return lambda out: build(argparse.Namespace(**{**vars(args), "out": str(out), "overwrite": overwrite}))


def run(args: argparse.Namespace) -> int:
    """Run the sweep (:func:`benchmarks.sweep.run_sweep`) and print where the report command is."""
    from benchmarks.sweep import parse_world_sizes, run_sweep

    sizes = parse_world_sizes(args.world_sizes)
    out = Path(args.out)
    dirs = run_sweep(job_builder(args.command, args.overwrite), sizes, out, launcher=args.launcher, hosts=args.hosts,
                     hostfile=args.hostfile, controller=args.controller,
                     launcher_args=shlex.split(args.launcher_args or ""), overwrite=args.overwrite)
    print(f"sweep done: {', '.join(map(str, dirs))}\nreport: harness report {out}/k* --out {out}/report")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``harness sweep``."""
    sw = sub.add_parser("sweep", help="run a bench or train command at several world sizes")
    sw.add_argument("--world-sizes", required=True, help="e.g. 1,2,4,8")
    sw.add_argument("--launcher", choices=LAUNCHERS, default="horovodrun")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--hostfile", help="hostfile for the launcher (see hostfiles/README.md)")
    where.add_argument("-H", "--hosts", help="host:slots,... (default localhost:k)")
    sw.add_argument("--controller", choices=CONTROLLERS, help="horovodrun controller")
    sw.add_argument("--launcher-args", metavar="'FLAGS'",
                    help="extra launcher flags, quoted as one argument, e.g. '--timeline-filename t.json' "
                         "or \"-mca plm_rsh_args '-i KEY'\"")
    sw.add_argument("--out", required=True, metavar="DIR")
    sw.add_argument("--overwrite", action="store_true")
    sw.add_argument("command", nargs=argparse.REMAINDER, help="-- bench throughput ... | -- train ...")
    sw.set_defaults(func=run)
