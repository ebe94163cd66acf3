"""``harness experiment batch-scaling``: error against global batch and its knee, as the papers show it (see :mod:`benchmarks.batch_scaling`)."""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
import time
from pathlib import Path

from backends import BACKENDS
from harness_cli.errors import RunFailure, UsageError


def batch_scaling(args: argparse.Namespace) -> int:
    """Train the grid, then write the per-run and summary CSV files, the targets, the tables and the plots."""
    from benchmarks import batch_scaling as bs
    from benchmarks import batch_scaling_report as report

    grid, methods = bs.configure(quick=args.quick, seeds=args.seeds, epochs=args.epochs, workers=args.workers,
                                 methods=args.methods.split(",") if args.methods else None, complete=args.complete)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"--out {out} already has files; pass --overwrite or choose a new directory")
    mode = bs.mode_text(grid, args.workers)
    jobs = args.jobs or max(1, (os.cpu_count() or 1) // args.workers)
    print(f"batch-scaling: {len(bs.configurations(grid, methods))} runs, {jobs} at a time; {mode}", flush=True)
    started = time.perf_counter()
    try:
        rows = bs.run_grid(grid, out, backend=args.backend, workers=args.workers, jobs=jobs, methods=methods,
                           overwrite=args.overwrite, log=functools.partial(print, flush=True))
    except RuntimeError as exc:
        raise RunFailure(f"batch-scaling stopped: {exc}") from None
    command = "harness experiment batch-scaling " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    text, _ = report.write_outputs(rows, grid, out, mode=mode, backend=args.backend, command=command.strip(),
                                   wall_s=time.perf_counter() - started)
    print(text)
    print(f"table: {out / 'table.md'}; docs/results.md fragment: {out / 'readme_table.md'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``harness experiment batch-scaling``."""
    exp = sub.add_parser("experiment", help="accuracy experiments on real data")
    esub = exp.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    bsc = esub.add_parser("batch-scaling", help="test error against global batch (1x-64x) for linear scaling + "
                                                "gradual warmup and LARS, the knees, the controls; paired over "
                                                "seeds (Fashion-MNIST)")
    bsc.add_argument("--backend", choices=BACKENDS, default="torch")
    bsc.add_argument("--quick", action="store_true",
                     help="a 2-epoch grid at 1x, 4x and 8x, every method at 8x, 2 seeds, on 4096 images (tests)")
    bsc.add_argument("--workers", type=int, default=1, help="k Horovod workers per run (default: 1, accumulation)")
    bsc.add_argument("--jobs", type=int, help="runs at a time (default: cores / workers)")
    bsc.add_argument("--seeds", type=int, help="seeds per configuration (default: 5, or 2 with --quick)")
    bsc.add_argument("--epochs", type=float,
                     help="epochs at every batch (default: 8; 2 with --quick); SGD ÷10 at 75%%")
    bsc.add_argument("--methods", help="comma-separated subset of the methods")
    bsc.add_argument("--complete", action="store_true",
                     help="every method at every multiple (155 runs instead of 70)")
    bsc.add_argument("--out", default="runs/batch-scaling", metavar="DIR")
    bsc.add_argument("--overwrite", action="store_true")
    bsc.set_defaults(func=batch_scaling)
