"""``harness bench throughput|allreduce``: flags → a benchmark job (:mod:`benchmarks.jobs`), run on this rank
or, with ``--np``, written to ``OUT/job.json`` and launched as ``python -m harness.runtime.worker``.
``harness bench input``: the input pipeline against tf.data on one host (:mod:`benchmarks.input`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from backends import BACKENDS
from benchmarks.jobs import AllreduceJob, ThroughputJob
from harness.runtime.config import DEVICES
from harness.runtime.errors import ConfigError
from harness.runtime.records import JOB, prepare_out_dir
from harness.runtime.worker import worker_command, write_job
from harness_cli.launching import add_launch_arguments
from harness_cli.train import add_device_arguments


def throughput_job(args: argparse.Namespace) -> ThroughputJob:
    """``bench throughput``'s flags as a :class:`ThroughputJob` (every field checked)."""
    return ThroughputJob(out=Path(args.out), backend=args.backend, model=args.model,
                         per_worker_batch=args.per_worker_batch, warmup_steps=args.warmup_steps, steps=args.steps,
                         batches_per_iter=args.batches_per_iter, threads=args.threads, device=args.device,
                         precision=args.precision, channels_last=args.channels_last, input_shape=args.input_shape,
                         num_classes=args.num_classes, dataset=args.dataset, layout=args.layout,
                         peers=tuple(p for p in (args.peers or "").split(",") if p),
                         fusion_threshold_mb=args.fusion_threshold_mb, cycle_time_ms=args.cycle_time_ms,
                         overwrite=args.overwrite)


def allreduce_job(args: argparse.Namespace) -> AllreduceJob:
    """``bench allreduce``'s flags as an :class:`AllreduceJob` (every field checked)."""
    return AllreduceJob(out=Path(args.out), sizes=args.sizes, factor=args.factor, iters=args.iters,
                        warmup=args.warmup, peer=not args.no_peer, device=args.device,
                        fusion_threshold_mb=args.fusion_threshold_mb, cycle_time_ms=args.cycle_time_ms,
                        overwrite=args.overwrite)


JOBS = {"throughput": throughput_job, "allreduce": allreduce_job}


def run(args: argparse.Namespace) -> int:
    """``harness bench throughput|allreduce`` on this rank: run the job, print rank 0's result."""
    text = JOBS[args.bench_command](args).run()
    if text:
        print(text)
    return 0


def worker(args: argparse.Namespace) -> list[str]:
    """``bench ... --np``: check the flags and the run directory, write ``OUT/job.json``, return the worker command.

    Raises:
        ConfigError: a bad flag, or a run directory with files (without ``--overwrite``).
    """
    job = JOBS[args.bench_command](args)
    problem = prepare_out_dir(job.out, job.overwrite)
    if problem:
        raise ConfigError(problem, fields=("out", "overwrite"))
    return worker_command(write_job(job, job.out / JOB))


def input_bench(args: argparse.Namespace) -> int:
    """``harness bench input``: measure, write ``input.csv`` and ``summary.json``, print the table."""
    from benchmarks.input import InputBench, render_table, run_bench, write_results
    from harness.runtime import jpeg
    from harness.runtime.records import environment, usable_cpus

    config = InputBench(dataset=args.dataset, out=Path(args.out), data_workers=args.data_workers, images=args.images,
                        image_size=args.image_size, pipelines=tuple(p for p in args.pipelines.split(",") if p),
                        overwrite=args.overwrite)
    problem = prepare_out_dir(config.out, config.overwrite)
    if problem:
        raise ConfigError(problem, fields=("out", "overwrite"))
    rows = run_bench(config)
    path = write_results(config, rows, {**environment(), "usable_cpus": usable_cpus(),
                                        "jpeg_decoder": jpeg.decoder_name()})
    print(render_table(rows))
    print(f"input: {path}")
    return 0


def _worker_counts(text: str) -> tuple[int, ...]:
    """``1,2,4`` or ``1..8`` (every count from 1 to 8)."""
    try:
        if ".." in text:
            first, last = (int(v) for v in text.split(".."))
            return tuple(range(first, last + 1))
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,N,... or A..B, got {text!r}") from None


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
    tp.set_defaults(func=run, worker=worker)
    ar = bsub.add_parser("allreduce", help="algbw/busbw through Horovod, torch.distributed (Gloo, NCCL on GPUs) "
                                           "as the peer")
    ar.add_argument("--sizes", default="1KB..256MB", help="START..END in B/KB/MB/GB (default 1KB..256MB)")
    ar.add_argument("--factor", type=int, default=4, help="each size is FACTOR times the last (default 4)")
    ar.add_argument("--iters", type=int, default=20, help="timed iterations per size (fewer for large sizes)")
    ar.add_argument("--warmup", type=int, default=3)
    ar.add_argument("--no-peer", action="store_true", help="skip the torch.distributed measurement")
    ar.add_argument("--device", choices=DEVICES, default="auto",
                    help="where the tensors live: auto (the device training uses: GPU local_rank when CUDA is "
                         "available, reduced with NCCL), cpu (Horovod's host path), cuda")
    _knob_flags(ar)
    ar.add_argument("--out", required=True, metavar="DIR")
    ar.add_argument("--overwrite", action="store_true")
    add_launch_arguments(ar)
    ar.set_defaults(func=run, worker=worker)
    ip = bsub.add_parser("input", help="the input pipeline's images/s per core against tf.data (the MLPerf "
                                       "reference's decode_and_crop_jpeg input) on the same files")
    ip.add_argument("--dataset", required=True, metavar="DIR|'PATTERN.tar'", help="an image folder or tar shards")
    ip.add_argument("--data-workers", type=_worker_counts, default=(1,), metavar="N,N|A..B",
                    help="decode workers (processes; tf.data: threads) per measurement, e.g. 1,2,4 or 1..16 (default 1)")
    ip.add_argument("--images", type=int, default=1024, help="training crops decoded per measurement (default 1024)")
    ip.add_argument("--image-size", type=int, default=224, metavar="S")
    ip.add_argument("--pipelines", default="harness,harness-pillow,tfdata,tfdata-default,decode",
                    help="harness (this project's: JPEG windows), harness-pillow (the same with Pillow's full "
                         "decode), tfdata (MLPerf's, W threads), tfdata-default (its AUTOTUNE defaults), decode "
                         "(Pillow's full decode alone); default: all")
    ip.add_argument("--out", required=True, metavar="DIR")
    ip.add_argument("--overwrite", action="store_true")
    ip.set_defaults(func=input_bench)
