"""``harness report RUN_DIR... --out DIR``: scaling table, CSV and plots (:mod:`benchmarks.report`)."""

from __future__ import annotations

import argparse

from harness_cli.project import add_projection_arguments, projection_from_args


def run(args: argparse.Namespace) -> int:
    """Write the report and print its path (and the projection plot's, when there is one)."""
    from benchmarks.report import write_report

    target = projection_from_args(args)
    path = write_report(args.runs, args.out, overwrite=args.overwrite, target=target)
    print(f"report: {path}")
    if (path.parent / "projection.png").exists():
        print(f"projection plot: {path.parent / 'projection.png'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``harness report``."""
    report = sub.add_parser("report", help="scaling report (Markdown, CSV, PNG) from run directories",
                            description="Scaling report from run directories; with a run that records model bytes, "
                                        "the projection (same defaults and flags as `harness project`).")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="throughput, train or allreduce run directories")
    report.add_argument("--out", required=True, metavar="DIR",
                        help="where report.md, CSVs and PNGs go (required; no default)")
    report.add_argument("--overwrite", action="store_true",
                        help="replace report files already in --out (default: refuse)")
    add_projection_arguments(report)
    report.set_defaults(func=run)
