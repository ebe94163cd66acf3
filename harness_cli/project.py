"""``harness project``: predicted step time, weak-scaling efficiency and images/s per world size.

The flags of the projection (network, Horovod knobs, σ, base world size, world sizes) are shared with
``harness report`` (:func:`add_projection_arguments`), so both use one set of documented defaults.
"""

from __future__ import annotations

import argparse
import json

from harness.runtime.errors import ConfigError

NETWORK_HELP = ("nvlink-100gbe-roce (8 GPUs/node, NVLink 300 GB/s, 100 Gbit/s RoCE), nvlink-200g-ib, "
                "nvlink-25gbe-tcp, pcie-25gbe-tcp")


def add_projection_arguments(parser: argparse.ArgumentParser) -> None:
    """The projection flags, each with its default and unit in the help (shared by project and report)."""
    from benchmarks.costmodel import ALGORITHMS, INTERFERENCE, SIGMA_GPU
    from benchmarks.networks import DEFAULT_NETWORK, DEFAULT_WORLD_SIZES

    g = parser.add_argument_group("projection (defaults: Horovod 0.28 on a named network)")
    g.add_argument("--network", default=DEFAULT_NETWORK, metavar="NAME", help=f"named network: {NETWORK_HELP} "
                   f"(default: {DEFAULT_NETWORK})")
    g.add_argument("--gpus-per-node", type=int, metavar="G", help="workers per node (default: the network's, 8)")
    g.add_argument("--inter-gbps", type=float, metavar="GBIT",
                   help="line rate of each node's network link in Gbit/s (default: the network's, 100)")
    g.add_argument("--intra-gbps", type=float, metavar="GBIT",
                   help="line rate of one GPU's link inside a node in Gbit/s (default: the network's, 2400 = 300 GB/s)")
    g.add_argument("--inter-efficiency", type=float, metavar="F",
                   help="achieved fraction of the inter-node line rate, 0-1 (default: the network type's, 0.759 "
                        "for RoCE/InfiniBand, 0.5 for TCP)")
    g.add_argument("--latency-us", type=float, metavar="US",
                   help="per-message latency between nodes in µs (default: the network's, 10)")
    g.add_argument("--algorithm", choices=ALGORITHMS, default="nccl",
                   help="allreduce algorithm; nccl = the faster of ring and halving-doubling per message, as NCCL "
                        "≥ 2.4 picks ring or tree (default: nccl, Horovod's default)")
    g.add_argument("--fusion-mb", type=float, default=128.0, metavar="MIB",
                   help="Horovod fusion threshold in MiB (default: 128, HOROVOD_FUSION_THRESHOLD in 0.28)")
    g.add_argument("--cycle-ms", type=float, default=1.0, metavar="MS",
                   help="Horovod cycle time in ms (default: 1, HOROVOD_CYCLE_TIME in 0.28)")
    g.add_argument("--sigma", type=float, metavar="CV",
                   help=f"straggler σ, coefficient of variation of one worker's step time (default: measured "
                        f"from --from-run / the runs, else {SIGMA_GPU}, fitted on NVIDIA DGX-1 V100)")
    g.add_argument("--interference", type=float, default=INTERFERENCE, metavar="GAMMA",
                   help=f"backward slowdown with an allreduce in flight throughout, fraction (default: {INTERFERENCE})")
    g.add_argument("--base-world-size", type=int, default=1, metavar="K0",
                   help="efficiency is step time at K0 / step time at k (default: 1, one worker, no communication)")
    g.add_argument("--world-sizes", default=",".join(map(str, DEFAULT_WORLD_SIZES)), metavar="K,K,...",
                   help=f"world sizes to project (default: {','.join(map(str, DEFAULT_WORLD_SIZES))})")
    i = parser.add_argument_group("the input side (default: not modelled)")
    i.add_argument("--input-images-per-s", type=float, metavar="X",
                   help="images/s one node's input pipeline delivers (harness bench input, or your own figure; "
                        "default: not modelled)")
    i.add_argument("--storage-gbps", type=float, metavar="GBIT",
                   help="aggregate read rate of the shared filesystem, Gbit/s, for all nodes together (with "
                        "--image-bytes; default: not modelled)")
    i.add_argument("--image-bytes", metavar="BYTES", help="bytes per stored image, e.g. 110KB (ImageNet's JPEGs; "
                   "default: none)")


def projection_from_args(args: argparse.Namespace):
    """A :class:`benchmarks.projection.Projection` from the flags.

    Raises:
        ConfigError: malformed world sizes, or values the cost model rejects.
    """
    from benchmarks.projection import Projection

    try:
        sizes = tuple(sorted({int(k) for k in args.world_sizes.split(",")}))
    except ValueError:
        raise ConfigError(f"--world-sizes must be integers like 8,16,32, got {args.world_sizes!r}") from None
    if min(sizes) < 1 or args.base_world_size < 1:
        raise ConfigError("--world-sizes and --base-world-size must be >= 1")
    for flag in ("fusion_mb", "cycle_ms", "interference"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    image_bytes = _bytes(args.image_bytes) if getattr(args, "image_bytes", None) else None
    setting = Projection(args.network, args.gpus_per_node, args.inter_gbps, args.intra_gbps, args.latency_us,
                         args.inter_efficiency, args.algorithm, args.fusion_mb, args.cycle_ms, args.sigma,
                         args.interference, args.base_world_size, sizes, getattr(args, "input_images_per_s", None),
                         getattr(args, "storage_gbps", None), image_bytes)
    try:
        setting.net()
    except ValueError as exc:
        raise ConfigError(f"projection network: {exc}") from None
    if (setting.storage_gbps is None) != (setting.image_bytes is None):
        raise ConfigError("--storage-gbps and --image-bytes go together: the read rate is k·n·bytes per step")
    for flag, value in (("--input-images-per-s", setting.input_images_per_s), ("--storage-gbps", setting.storage_gbps),
                        ("--image-bytes", setting.image_bytes)):
        if value is not None and not value > 0:
            raise ConfigError(f"{flag} must be > 0, got {value:g}")
    return setting


def _bytes(text: str) -> int:
    from benchmarks.allreduce import parse_size

    try:
        return int(text) if text.isdigit() else parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"--image-bytes: {exc}") from None


def _model(args: argparse.Namespace) -> dict:
    from benchmarks.allreduce import parse_size
    from benchmarks.projection import DEFAULT_PER_WORKER_BATCH, from_run, workload_for

    if args.from_run:
        model = from_run(args.from_run)
    else:
        if args.compute_s is None or not (args.model or args.model_bytes):
            raise ConfigError("give --from-run DIR, or --compute-s with --model NAME or --model-bytes")
        size = None
        if args.model_bytes:
            size = int(args.model_bytes) if args.model_bytes.isdigit() else parse_size(args.model_bytes)
        workload = workload_for(args.model or "model", args.compute_s, model_bytes=size,
                                backward_fraction=args.backward_fraction)
        model = {"workload": workload, "per_worker_batch": DEFAULT_PER_WORKER_BATCH, "sigma": None,
                 "readiness": "layer table (FLOPs)" if workload.name == args.model and not size else "uniform in bytes"}
    if args.per_worker_batch:
        model["per_worker_batch"] = args.per_worker_batch
    return model


def run(args: argparse.Namespace) -> int:
    """Print the projection as a table (or JSON lines); with ``--plot`` write the PNG."""
    from tabulate import tabulate

    from benchmarks.projection import input_verdict, resolve_sigma

    setting = projection_from_args(args)
    try:
        model = _model(args)
        sigma, sigma_source = resolve_sigma(setting, model["sigma"])
        rows = setting.run(model["workload"], sigma=sigma, per_worker_batch=model["per_worker_batch"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        def ms(value):
            return "" if value is None else f"{value * 1e3:.1f}"

        print(tabulate([(r["world_size"], r["nodes"], ms(r["step_time_s"]), ms(r["comm_s"]), ms(r["exposed_comm_s"]),
                         ms(r["input_s"]), ms(r["storage_s"]), r["bound"], f"{100 * r['efficiency']:.1f}%",
                         f"{r['images_per_second']:,.0f}") for r in rows],
                       headers=["k", "nodes", "step ms", "allreduce ms", "exposed ms", "input ms", "storage ms",
                                "bound by", "efficiency", "images/s"]))
        w = model["workload"]
        print(f"{w.name}: {w.model_bytes / 2**20:.1f} MiB of gradients in {len(w.sizes_bytes)} tensors, readiness "
              f"{model['readiness']}, compute {w.compute_s * 1e3:.1f} ms, n = {model['per_worker_batch']}, "
              f"σ = {sigma:.4g} ({sigma_source})")
        print(setting.describe())
        verdict = input_verdict(rows)
        if verdict:
            print(f"input side: {verdict}")
    if args.plot:
        _plot(args.plot, rows, setting, model, sigma)
    return 0


def _plot(path: str, rows: list[dict], setting, model: dict, sigma: float) -> None:
    import dataclasses
    from pathlib import Path

    from benchmarks.projection_plot import anchor_points, plot_projection

    if Path(path).exists():
        raise ConfigError(f"{path} exists; choose a new path")
    w = model["workload"]
    without = None
    if setting.input_side():
        bare = dataclasses.replace(setting, input_images_per_s=None, storage_gbps=None, image_bytes=None)
        without = bare.run(w, sigma=sigma, per_worker_batch=model["per_worker_batch"])
    out = plot_projection(rows, path, title=f"{w.name} ({w.model_bytes / 2**20:.1f} MiB, {w.compute_s * 1e3:.1f} ms "
                          f"compute, n = {model['per_worker_batch']}) on {setting.net().name}",
                          note=setting.describe() + f"; σ = {sigma:.3g}; readiness {model['readiness']}",
                          anchors=anchor_points(), without_input=without)
    print(f"plot: {out}", flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``harness project``."""
    pj = sub.add_parser("project", help="project step time and weak-scaling efficiency to more GPUs",
                        description="Predicted step time, weak-scaling efficiency and images/s per world size "
                                    "(benchmarks/costmodel.py; validated in docs/benchmarks.md).")
    m = pj.add_argument_group("the model (--from-run DIR, or --compute-s with --model and/or --model-bytes)")
    m.add_argument("--from-run", metavar="DIR", help="a throughput/train run: compute = its median step time, "
                   "bytes, σ from its step times, readiness from DIR/layers.json (default: none)")
    m.add_argument("--model", metavar="NAME", help="resnet50, resnet101, vgg16 or inception3 (layer table: bytes "
                   "and FLOPs-split readiness), or any label with --model-bytes (default: none)")
    m.add_argument("--model-bytes", metavar="BYTES", help="gradient bytes per step, e.g. 102228128 or 98MB "
                   "(default: from --model)")
    m.add_argument("--compute-s", type=float, metavar="S", help="forward+backward seconds per step on one GPU "
                   "(default: none; required without --from-run)")
    m.add_argument("--backward-fraction", type=float, default=2 / 3, metavar="F",
                   help="backward's share of compute, 0-1 (default: 0.667: backward ≈ 2 × forward FLOPs)")
    m.add_argument("--per-worker-batch", type=int, metavar="N", help="images per worker per step, for images/s "
                   "(default: the run's, else 32)")
    add_projection_arguments(pj)
    pj.add_argument("--json", action="store_true", help="one JSON object per world size (default: a table)")
    pj.add_argument("--plot", metavar="PNG", help="also write the projection plot here (default: no plot)")
    pj.set_defaults(func=run)
