"""``harness bench throughput|allreduce``: run a benchmark on this rank and print its summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backends import BACKENDS
from harness_cli.launching import add_launch_arguments
from harness_cli.train import add_device_arguments
from harness.runtime.errors import ConfigError
from harness.runtime.knobs import apply_horovod_knobs
from harness.runtime.records import RECORDS, SUMMARY, RecordWriter, environment, prepare_out_dir


def _positive(name: str, value, minimum: int = 1):
    if value is None or value < minimum:
        raise ConfigError(f"--{name} must be >= {minimum}, got {value}")
    return value


def _claim_out_dir(collectives, rank: int, args: argparse.Namespace) -> Path:
    out = Path(args.out)
    problem = collectives.broadcast_object(prepare_out_dir(out, args.overwrite) if rank == 0 else None)
    if problem:
        raise ConfigError(problem)
    return out


def _write_run(out: Path, records: list[dict], summary: dict) -> None:
    writer = RecordWriter(out / RECORDS)
    writer.write(records)
    writer.close()
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")


def bench_throughput(args: argparse.Namespace) -> int:
    """``harness bench throughput``: synthetic-data images/s from every rank's own timings."""
    from backends import make_engine
    from benchmarks.peers import PEERS, TORCH_ONLY
    from benchmarks.throughput import check_bench_data, run_throughput
    from harness.runtime.models import resolve_model

    for name in ("per_worker_batch", "steps", "batches_per_iter", "threads"):
        _positive(name.replace("_", "-"), getattr(args, name))
    _positive("warmup-steps", args.warmup_steps, 0)
    if args.steps < args.batches_per_iter:
        raise ConfigError(f"--steps ({args.steps}) must be >= --batches-per-iter ({args.batches_per_iter})")
    apply_horovod_knobs(fusion_threshold_mb=args.fusion_threshold_mb, cycle_time_ms=args.cycle_time_ms)
    model = resolve_model(args.model)
    data = None
    if args.dataset:
        from harness.datasets import load_npz

        try:
            data = load_npz(args.dataset, layout=args.layout)
            check_bench_data(data, args.per_worker_batch, input_shape=args.input_shape, num_classes=args.num_classes)
        except ValueError as exc:
            raise ConfigError(f"--dataset {exc}" if str(exc).startswith(args.dataset) else str(exc)) from None
    peers = tuple(p for p in (args.peers or "").split(",") if p)
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise ConfigError(f"--peers: unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    if args.backend != "torch" and set(peers) & set(TORCH_ONLY):
        raise ConfigError(f"--peers {','.join(sorted(set(peers) & set(TORCH_ONLY)))}: torch loops, for --backend "
                          f"torch only (Keras: --peers plain)")
    try:
        engine = make_engine(args.backend, threads=args.threads, device=args.device, precision=args.precision,
                             channels_last=args.channels_last)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    created = not Path(args.out).exists()
    out = _claim_out_dir(engine, engine.rank, args)
    try:
        records, summary = run_throughput(engine, model=model, per_worker_batch=args.per_worker_batch,
                                          warmup_steps=args.warmup_steps, steps=args.steps,
                                          batches_per_iter=args.batches_per_iter, input_shape=args.input_shape,
                                          num_classes=args.num_classes, peers=peers, data=data)
    except ValueError as exc:
        if created and engine.rank == 0 and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a model that cannot be built leaves nothing behind
        raise ConfigError(str(exc)) from None
    if engine.rank == 0:
        run = {"kind": "run", "rank": 0, "world_size": engine.size, "command": "bench throughput", **environment()}
        _write_run(out, [run, *records], summary)
        print(f"{args.model} k={summary['world_size']} n={summary['per_worker_batch']}: "
              f"{summary['images_per_second']:.1f} images/s total "
              f"({summary['images_per_second_iter_mean']:.1f} ± {summary['images_per_second_ci95']:.1f} per "
              f"iteration), {summary['images_per_second_per_worker']:.1f} per worker, step time spread "
              f"{100 * summary['step_time_s_spread']:.1f}% across ranks on {_device_label(summary)} | {out / SUMMARY}")
        for peer, result in summary.get("peers", {}).items():
            print(f"peer {peer}: {result['images_per_second_per_worker']:.1f} images/s per worker; harness / {peer} = "
                  f"{summary[f'ratio_to_{peer}']:.3f}")
    return 0


def _device_label(summary: dict) -> str:
    device = summary.get("device", {})
    return f"{device.get('type', 'cpu')} ({device.get('name', 'cpu')}), {summary.get('precision', 'fp32')}"


def bench_allreduce(args: argparse.Namespace) -> int:
    """``harness bench allreduce``: algbw/busbw through Horovod and torch.distributed (Gloo)."""
    import horovod.torch as hvd
    from tabulate import tabulate

    from benchmarks.allreduce import run_allreduce, size_range
    from harness.runtime.knobs import horovod_knobs

    try:
        sizes = size_range(args.sizes, args.factor)
    except ValueError as exc:
        raise ConfigError(f"--sizes: {exc}") from None
    _positive("iters", args.iters)
    apply_horovod_knobs(fusion_threshold_mb=args.fusion_threshold_mb, cycle_time_ms=args.cycle_time_ms)
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


def _knob_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fusion-threshold-mb", type=float,
                        help="HOROVOD_FUSION_THRESHOLD in MiB (Horovod 0.28.1 default: 128; 0 disables fusion)")
    parser.add_argument("--cycle-time-ms", type=float, help="HOROVOD_CYCLE_TIME in ms (default: 1)")


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected CxHxW like 3x224x224, got {text!r}")
    return shape


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``bench throughput`` and ``bench allreduce`` to the ``harness`` parser."""
    bench = sub.add_parser("bench", help="throughput and allreduce benchmarks (run under a launcher for k > 1)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    tp = bsub.add_parser("throughput", help="synthetic-data training throughput, timed on every rank")
    tp.add_argument("--backend", choices=BACKENDS, default="torch")
    tp.add_argument("--model", default="resnet-small", metavar="NAME|MODULE:FUNCTION",
                    help="resnet-small, resnet50, mlp, or your builder package.module:function")
    tp.add_argument("--input-shape", type=_shape, metavar="CxHxW",
                    help="synthetic image shape (default: 3x224x224 for resnet50, else 1x28x28)")
    tp.add_argument("--num-classes", type=int, help="synthetic classes (default: 1000 for resnet50, else 10)")
    tp.add_argument("--dataset", metavar="FILE.npz",
                    help="time on the first n training images of your own data (arrays x_train, y_train, x_test, "
                         "y_test) instead of synthetic images; sets the input shape and class count")
    tp.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW", help="image layout of --dataset")
    tp.add_argument("--per-worker-batch", type=int, default=32)
    tp.add_argument("--warmup-steps", type=int, default=5)
    tp.add_argument("--steps", type=int, default=50)
    tp.add_argument("--batches-per-iter", type=int, default=10, help="steps per iteration for mean ± CI")
    tp.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    add_device_arguments(tp)
    tp.add_argument("--peers", metavar="NAME[,NAME]",
                    help="baselines measured right after in the same processes: plain (the framework's own loop, "
                         "no communication), horovod (a bare horovod.torch loop), ddp (torch DistributedDataParallel, "
                         "Gloo on CPU, NCCL on CUDA); prints harness / peer")
    _knob_flags(tp)
    tp.add_argument("--out", required=True, metavar="DIR")
    tp.add_argument("--overwrite", action="store_true")
    add_launch_arguments(tp)
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
    add_launch_arguments(ar)
    ar.set_defaults(func=bench_allreduce)
