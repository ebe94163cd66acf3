"""``harness bench throughput|allreduce``, ``harness sweep`` and ``harness project``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from harness_cli.errors import UsageError
from harness_cli.hostfile import parse_hostfile
from harness_cli.launch import CONTROLLERS, LAUNCHERS, launch_command
from harness_cli.records import RECORDS, SUMMARY, RecordWriter, environment, prepare_out_dir
from harness_cli.train import BACKENDS


def _positive(name: str, value, minimum: int = 1):
    if value is None or value < minimum:
        raise UsageError(f"--{name} must be >= {minimum}, got {value}")
    return value


def _apply_horovod_knobs(args: argparse.Namespace) -> None:
    """Set HOROVOD_FUSION_THRESHOLD / HOROVOD_CYCLE_TIME from flags; Horovod reads them at init."""
    if args.fusion_threshold_mb is not None:
        if args.fusion_threshold_mb < 0:
            raise UsageError(f"--fusion-threshold-mb must be >= 0, got {args.fusion_threshold_mb}")
        os.environ["HOROVOD_FUSION_THRESHOLD"] = str(int(args.fusion_threshold_mb * 2**20))
    if args.cycle_time_ms is not None:
        if args.cycle_time_ms < 0:
            raise UsageError(f"--cycle-time-ms must be >= 0, got {args.cycle_time_ms}")
        os.environ["HOROVOD_CYCLE_TIME"] = str(args.cycle_time_ms)


def _claim_out_dir(engine_or_hvd, rank: int, args: argparse.Namespace) -> Path:
    out = Path(args.out)
    problem = engine_or_hvd.broadcast_object(prepare_out_dir(out, args.overwrite) if rank == 0 else None)
    if problem:
        raise UsageError(problem)
    return out


def _write_run(out: Path, records: list[dict], summary: dict) -> None:
    writer = RecordWriter(out / RECORDS)
    writer.write(records)
    writer.close()
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")


def bench_throughput(args: argparse.Namespace) -> int:
    """``harness bench throughput``: synthetic-data images/s from every rank's own timings."""
    from benchmarks.throughput import run_throughput
    from harness_cli.train import make_engine

    for name in ("per_worker_batch", "steps", "batches_per_iter"):
        _positive(name.replace("_", "-"), getattr(args, name))
    _positive("warmup-steps", args.warmup_steps, 0)
    if args.steps < args.batches_per_iter:
        raise UsageError(f"--steps ({args.steps}) must be >= --batches-per-iter ({args.batches_per_iter})")
    _apply_horovod_knobs(args)
    engine = make_engine(args.backend, args.threads)
    out = _claim_out_dir(engine, engine.rank, args)
    try:
        records, summary = run_throughput(engine, model=args.model, per_worker_batch=args.per_worker_batch,
                                          warmup_steps=args.warmup_steps, steps=args.steps,
                                          batches_per_iter=args.batches_per_iter)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if engine.rank == 0:
        run = {"kind": "run", "rank": 0, "world_size": engine.size, "command": "bench throughput", **environment()}
        _write_run(out, [run, *records], summary)
        print(f"{args.model} k={summary['world_size']} n={summary['per_worker_batch']}: "
              f"{summary['images_per_second']:.1f} images/s total "
              f"({summary['images_per_second_iter_mean']:.1f} ± {summary['images_per_second_ci95']:.1f} per "
              f"iteration), {summary['images_per_second_per_worker']:.1f} per worker, step time spread "
              f"{100 * summary['step_time_s_spread']:.1f}% across ranks | {out / SUMMARY}")
    return 0


def bench_allreduce(args: argparse.Namespace) -> int:
    """``harness bench allreduce``: algbw/busbw through Horovod and torch.distributed (Gloo)."""
    import horovod.torch as hvd
    from tabulate import tabulate

    from benchmarks.allreduce import run_allreduce, size_range
    from benchmarks.throughput import horovod_knobs

    try:
        sizes = size_range(args.sizes, args.factor)
    except ValueError as exc:
        raise UsageError(f"--sizes: {exc}") from None
    _positive("iters", args.iters)
    _apply_horovod_knobs(args)
    hvd.init()
    out = _claim_out_dir(hvd, hvd.rank(), args)
    records = run_allreduce(sizes, iters=args.iters, warmup=args.warmup, peer=not args.no_peer)
    if hvd.rank() == 0:
        summary = {"kind": "allreduce", "world_size": hvd.size(), "sizes_bytes": sizes,
                   "controller": "gloo" if hvd.gloo_enabled() else "mpi", **horovod_knobs(), "results": records}
        run = {"kind": "run", "rank": 0, "world_size": hvd.size(), "command": "bench allreduce", **environment()}
        _write_run(out, [run, *records], summary)
        rows = [(r["impl"], r["size_bytes"], f"{r['time_s'] * 1e3:.3f}", f"{r['algbw_gbps']:.3f}",
                 f"{r['busbw_gbps']:.3f}") for r in records]
        print(tabulate(rows, headers=["impl", "bytes", "time ms", "algbw GB/s", "busbw GB/s"]))
        print(f"k={hvd.size()}, controller {summary['controller']} | {out / SUMMARY}")
    return 0


def sweep(args: argparse.Namespace) -> int:
    """``harness sweep``: run one subcommand at each world size under a launcher."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command or command[0] not in ("bench", "train"):
        raise UsageError("sweep needs a command after --: 'bench throughput ...', 'bench allreduce ...' or 'train ...'")
    if "--out" in command:
        raise UsageError("give --out to sweep, not to the command: each world size writes DIR/k<k>")
    try:
        sizes = sorted({int(k) for k in args.world_sizes.split(",")})
    except ValueError:
        raise UsageError(f"--world-sizes must be integers like 1,2,4, got {args.world_sizes!r}") from None
    if sizes[0] < 1:
        raise UsageError(f"world sizes must be >= 1, got {sizes[0]}")
    if args.hostfile:
        parsed = parse_hostfile(args.hostfile) if Path(args.hostfile).is_file() else None
        if parsed is None or parsed.problems:
            raise UsageError(f"--hostfile {args.hostfile}: " + ("not found" if parsed is None else parsed.problems[0]))
        if sizes[-1] > parsed.total_slots:
            raise UsageError(f"world size {sizes[-1]} exceeds the {parsed.total_slots} slots in {args.hostfile}")
    out = Path(args.out)
    problem = prepare_out_dir(out, args.overwrite)
    if problem:
        raise UsageError(problem)
    done = []
    for k in sizes:
        argv = [sys.executable, "-m", "harness_cli", *command, "--out", str(out / f"k{k}")]
        if args.overwrite:
            argv.append("--overwrite")
        cmd = launch_command(argv, launcher=args.launcher, np=k, hosts=args.hosts or f"localhost:{k}",
                             hostfile=args.hostfile, controller=args.controller)
        print(f"== sweep: world size {k}: {' '.join(cmd)}", flush=True)
        code = subprocess.run(cmd).returncode
        if code != 0 or not (out / f"k{k}" / SUMMARY).exists():
            print(f"harness: error: sweep stopped: world size {k} failed (exit code {code}; its output is above); "
                  f"finished: {', '.join(map(str, done)) or 'none'}", file=sys.stderr)
            return 1
        done.append(k)
    (out / "sweep.json").write_text(json.dumps({"world_sizes": sizes, "launcher": args.launcher,
                                                "command": command}, indent=2) + "\n")
    print(f"sweep done: {', '.join(str(out / f'k{k}') for k in sizes)}\n"
          f"report: harness report {out}/k* --out {out}/report")
    return 0


def project(args: argparse.Namespace) -> int:
    """``harness project``: predicted step time and weak-scaling efficiency per world size."""
    from tabulate import tabulate

    from benchmarks.allreduce import parse_size
    from benchmarks.costmodel import GBIT, Network, project as run_projection

    try:
        model_bytes = int(args.model_bytes) if args.model_bytes.isdigit() else parse_size(args.model_bytes)
        world_sizes = sorted({int(k) for k in args.world_sizes.split(",")})
        net = Network(gpus_per_node=args.gpus_per_node, inter_bandwidth=args.inter_gbps * GBIT,
                      intra_bandwidth=(args.intra_gbps or args.inter_gbps) * GBIT, latency_s=args.latency_us * 1e-6,
                      intra_latency_s=args.latency_us * 1e-6 / 2)
        rows = run_projection(model_bytes, args.compute_s, world_sizes, net, algorithm=args.algorithm,
                              backward_fraction=args.backward_fraction, fusion_bytes=args.fusion_mb * 2**20,
                              cycle_s=args.cycle_ms * 1e-3)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(tabulate([(r["world_size"], r["nodes"], f"{r['step_time_s'] * 1e3:.1f}", f"{r['comm_s'] * 1e3:.1f}",
                     f"{r['exposed_comm_s'] * 1e3:.1f}", f"{100 * r['efficiency']:.1f}%",
                     f"{100 * r['efficiency_vs_compute']:.1f}%") for r in rows],
                   headers=["k", "nodes", "step ms", "allreduce ms", "exposed ms", "efficiency", "vs compute"]))
    print(f"efficiency relative to k = {rows[0]['world_size']}; {args.algorithm} allreduce, "
          f"{args.gpus_per_node} per node, {args.inter_gbps} Gbit/s between nodes")
    return 0


def _knob_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fusion-threshold-mb", type=float,
                        help="HOROVOD_FUSION_THRESHOLD in MiB (Horovod 0.28.1 default: 128; 0 disables fusion)")
    parser.add_argument("--cycle-time-ms", type=float, help="HOROVOD_CYCLE_TIME in ms (default: 1)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``bench``, ``sweep`` and ``project`` to the ``harness`` parser."""
    from benchmarks.costmodel import ALGORITHMS

    bench = sub.add_parser("bench", help="throughput and allreduce benchmarks (run under a launcher for k > 1)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    tp = bsub.add_parser("throughput", help="synthetic-data training throughput, timed on every rank")
    tp.add_argument("--backend", choices=BACKENDS, default="torch")
    tp.add_argument("--model", default="resnet-small", help="resnet-small, resnet50 or mlp")
    tp.add_argument("--per-worker-batch", type=int, default=32)
    tp.add_argument("--warmup-steps", type=int, default=5)
    tp.add_argument("--steps", type=int, default=50)
    tp.add_argument("--batches-per-iter", type=int, default=10, help="steps per iteration for mean ± CI")
    tp.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    _knob_flags(tp)
    tp.add_argument("--out", required=True, metavar="DIR")
    tp.add_argument("--overwrite", action="store_true")
    tp.set_defaults(func=bench_throughput)
    ar = bsub.add_parser("allreduce", help="algbw/busbw through Horovod, torch.distributed (Gloo) as the peer")
    ar.add_argument("--sizes", default="1KB..256MB", help="START..END in B/KB/MB/GB (default 1KB..256MB)")
    ar.add_argument("--factor", type=int, default=4, help="each size is FACTOR times the last (default 4)")
    ar.add_argument("--iters", type=int, default=20, help="timed iterations per size (fewer for large sizes)")
    ar.add_argument("--warmup", type=int, default=3)
    ar.add_argument("--no-peer", action="store_true", help="skip the torch.distributed Gloo measurement")
    _knob_flags(ar)
    ar.add_argument("--out", required=True, metavar="DIR")
    ar.add_argument("--overwrite", action="store_true")
    ar.set_defaults(func=bench_allreduce)

    sw = sub.add_parser("sweep", help="run a bench or train command at several world sizes")
    sw.add_argument("--world-sizes", required=True, help="e.g. 1,2,4,8")
    sw.add_argument("--launcher", choices=LAUNCHERS, default="horovodrun")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--hostfile", help="hostfile for the launcher (see hostfiles/README.md)")
    where.add_argument("-H", "--hosts", help="host:slots,... (default localhost:k)")
    sw.add_argument("--controller", choices=CONTROLLERS, help="horovodrun controller")
    sw.add_argument("--out", required=True, metavar="DIR")
    sw.add_argument("--overwrite", action="store_true")
    sw.add_argument("command", nargs=argparse.REMAINDER, help="-- bench throughput ... | -- train ...")
    sw.set_defaults(func=sweep)

    pj = sub.add_parser("project", help="project step time and weak-scaling efficiency to more GPUs")
    pj.add_argument("--model-bytes", required=True, help="gradient bytes per step, e.g. 102228128 or 98MB")
    pj.add_argument("--compute-s", type=float, required=True, help="forward+backward seconds per step on one GPU")
    pj.add_argument("--backward-fraction", type=float, default=2 / 3)
    pj.add_argument("--gpus-per-node", type=int, required=True)
    pj.add_argument("--inter-gbps", type=float, required=True, help="Gbit/s of each node's network link")
    pj.add_argument("--intra-gbps", type=float, help="Gbit/s of one GPU's link inside a node (default: --inter-gbps)")
    pj.add_argument("--latency-us", type=float, default=10.0, help="per-message latency between nodes (µs)")
    pj.add_argument("--algorithm", choices=ALGORITHMS, default="ring")
    pj.add_argument("--fusion-mb", type=float, default=128.0, help="fusion threshold (Horovod default 128 MiB)")
    pj.add_argument("--cycle-ms", type=float, default=1.0, help="Horovod cycle time (default 1 ms)")
    pj.add_argument("--world-sizes", default="8,16,32,64,128,256")
    pj.add_argument("--json", action="store_true", help="one JSON object per world size")
    pj.set_defaults(func=project)
