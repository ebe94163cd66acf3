"""Subcommand registration: each entry adds one subcommand to the ``harness`` parser.

Subcommands import their heavy dependencies (torch, TensorFlow, pandas) inside their handler,
so ``harness --help`` and ``harness hostfile check`` start fast.
"""

from __future__ import annotations

import argparse
import sys

from harness_cli.errors import UsageError
from harness_cli.hostfile import LAUNCHERS, parse_hostfile


def _hostfile_check(args: argparse.Namespace) -> int:
    try:
        parsed = parse_hostfile(args.file, launcher=args.launcher)
    except OSError as exc:
        raise UsageError(f"cannot read hostfile {args.file}: {exc.strerror}") from None
    if parsed.problems:
        for problem in parsed.problems:
            print(f"harness: error: {problem}", file=sys.stderr)
        return 2
    print(f"{args.file}: ok ({parsed.dialect}, {len(parsed.hosts)} hosts, {parsed.total_slots} slots)")
    return 0


def register_hostfile(sub: argparse._SubParsersAction) -> None:
    """``harness hostfile check FILE [--launcher any|mpirun|horovodrun]``."""
    hostfile = sub.add_parser("hostfile", help="work with hostfiles")
    hsub = hostfile.add_subparsers(dest="hostfile_command", metavar="ACTION", required=True)
    check = hsub.add_parser("check", help="validate a hostfile: syntax, slots > 0, duplicate hosts")
    check.add_argument("file")
    check.add_argument("--launcher", choices=LAUNCHERS, default="any",
                       help="check against this launcher's rules (default: the file's own dialect)")
    check.set_defaults(func=_hostfile_check)


def _train(args: argparse.Namespace) -> int:
    from harness_cli.train import run_train

    return run_train(args)


def register_train(sub: argparse._SubParsersAction) -> None:
    """``harness train``: the recipe on k Horovod workers (alone, or under horovodrun/mpirun)."""
    from harness_cli.train import add_train_arguments

    train = sub.add_parser("train", help="train with the recipe; k workers come from Horovod")
    add_train_arguments(train)
    train.set_defaults(func=_train)


def _report(args: argparse.Namespace) -> int:
    from benchmarks.report import write_report

    from benchmarks.report_comm import ProjectionNetwork

    try:
        target = ProjectionNetwork(args.gpus_per_node, args.inter_gbps, args.intra_gbps, args.latency_us,
                                   args.algorithm, tuple(sorted({int(k) for k in args.world_sizes.split(",")})))
        target.network()
    except ValueError as exc:
        raise UsageError(f"projection network: {exc}") from None
    path = write_report(args.runs, args.out, overwrite=args.overwrite, target=target)
    print(f"report: {path}")
    return 0


def register_report(sub: argparse._SubParsersAction) -> None:
    """``harness report RUN_DIR... --out DIR``: scaling table, CSV and plots."""
    report = sub.add_parser("report", help="scaling report (Markdown, CSV, PNG) from run directories")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", required=True, metavar="DIR")
    report.add_argument("--overwrite", action="store_true", help="replace report files already in --out")
    proj = report.add_argument_group("projection network (for the measured model)")
    proj.add_argument("--gpus-per-node", type=int, default=8)
    proj.add_argument("--inter-gbps", type=float, default=100.0, help="Gbit/s of each node's network link")
    proj.add_argument("--intra-gbps", type=float, default=1200.0, help="Gbit/s of a GPU's link inside a node")
    proj.add_argument("--latency-us", type=float, default=10.0)
    proj.add_argument("--algorithm", choices=("ring", "hd", "hierarchical"), default="hierarchical")
    proj.add_argument("--world-sizes", default="8,16,32,64,128,256")
    report.set_defaults(func=_report)


def register_bench(sub: argparse._SubParsersAction) -> None:
    """``harness bench``, ``harness sweep`` and ``harness project`` (see :mod:`harness_cli.bench`)."""
    from harness_cli.bench import register

    register(sub)


def register_experiment(sub: argparse._SubParsersAction) -> None:
    """``harness experiment batch-scaling`` (see :mod:`harness_cli.experiment`)."""
    from harness_cli.experiment import register

    register(sub)


REGISTRY = [register_hostfile, register_train, register_report, register_bench, register_experiment]
