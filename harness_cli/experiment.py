"""``harness experiment batch-scaling``: the papers' tables in miniature (see :mod:`benchmarks.batch_scaling`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

from harness_cli.errors import UsageError
from harness_cli.train import BACKENDS


def batch_scaling(args: argparse.Namespace) -> int:
    """Train the grid, then write ``table.md``, ``table.csv``, ``results.csv`` and the plots."""
    from benchmarks import batch_scaling as bs

    grid = bs.QUICK if args.quick else bs.FULL
    if args.seeds is not None:
        if args.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
        grid = dataclasses.replace(grid, seeds=tuple(range(args.seeds)))
    if args.epochs is not None:
        try:
            grid = bs.with_epochs(grid, args.epochs)
        except ValueError as exc:
            raise UsageError(f"--epochs: {exc}") from None
    if args.workers < 1 or (args.workers > 1 and any(m * grid.base_batch % args.workers for m in grid.multiples)):
        raise UsageError(f"--workers must be >= 1 and divide every global batch, got {args.workers}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"--out {out} already has files; pass --overwrite or choose a new directory")
    methods = args.methods.split(",") if args.methods else bs.METHODS
    unknown = sorted(set(methods) - set(bs.METHODS))
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(bs.METHODS)}")
    mode = (f"{args.workers} Horovod workers (horovodrun), gradient accumulation above n = {grid.micro_batch}"
            if args.workers > 1 else f"one process, gradient accumulation in passes of up to {grid.micro_batch} images")
    jobs = args.jobs or max(1, (os.cpu_count() or 1) // args.workers)
    print(f"batch-scaling: {len(bs.configurations(grid, methods))} runs, {jobs} at a time; {mode}", flush=True)
    started = time.perf_counter()
    try:
        rows = bs.run_grid(grid, out, backend=args.backend, workers=args.workers, jobs=jobs, methods=methods,
                           overwrite=args.overwrite)
    except RuntimeError as exc:
        print(f"harness: error: batch-scaling stopped: {exc}", file=sys.stderr)
        return 1
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    table = bs.summarise(rows)
    table.to_csv(out / "table.csv", index=False)
    bs.plot_accuracy(table, out)
    bs.plot_early_loss(rows, out)
    command = "harness experiment batch-scaling " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    text = bs.render(table, grid, mode=mode, backend=args.backend, command=command.strip(),
                     wall_s=time.perf_counter() - started)
    (out / "table.md").write_text(text)
    (out / "grid.json").write_text(json.dumps({**dataclasses.asdict(grid), "mode": mode, "backend": args.backend}, indent=2))
    print(text)
    gaps = bs.gap_to_base(table)
    for (multiple, method), gap in sorted(gaps.items()):
        if multiple in (32, 64) and method in ("linear-gradual", "lars"):
            print(f"gap to the base batch at {multiple}x, {method}: {gap:+.2f} points")
    print(f"table: {out / 'table.md'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``harness experiment batch-scaling``."""
    exp = sub.add_parser("experiment", help="accuracy experiments on real data")
    esub = exp.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    bsc = esub.add_parser("batch-scaling", help="accuracy vs global batch for five LR methods (Fashion-MNIST)")
    bsc.add_argument("--backend", choices=BACKENDS, default="torch")
    bsc.add_argument("--quick", action="store_true", help="a 2-epoch, 2-batch, 1-seed grid on 4096 images (tests)")
    bsc.add_argument("--workers", type=int, default=1, help="k Horovod workers per run (default: 1, accumulation)")
    bsc.add_argument("--jobs", type=int, help="runs at a time (default: cores / workers)")
    bsc.add_argument("--seeds", type=int, help="seeds per configuration (default: 2, or 1 with --quick)")
    bsc.add_argument("--epochs", type=float, help="epochs at every batch (default: 6; 2 with --quick); ÷10 at 75%%")
    bsc.add_argument("--methods", help="comma-separated subset of the methods")
    bsc.add_argument("--out", default="runs/batch-scaling", metavar="DIR")
    bsc.add_argument("--overwrite", action="store_true")
    bsc.set_defaults(func=batch_scaling)
