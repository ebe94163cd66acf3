"""Allreduce bandwidth through Horovod, with ``torch.distributed`` measured in the same run.

Tensors live where training keeps its gradients: on the rank's GPU when CUDA is available (Horovod's
NCCL path, ``torch.distributed`` NCCL as the peer), else in host memory (Gloo or MPI, and
``torch.distributed`` Gloo). Each record says which (``device``).

nccl-tests convention: for S bytes allreduced in t seconds over k ranks,
algbw = S / t and busbw = algbw · 2(k−1)/k (the per-link rate of a bandwidth-optimal allreduce,
comparable across k). An operation's time is the slowest rank's, median over iterations.

References:
    NVIDIA nccl-tests, doc/PERFORMANCE.md (algbw and busbw).
"""

from __future__ import annotations

import re
import socket

import numpy as np

from benchmarks.timing import time_calls

UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}


def parse_size(text: str) -> int:
    """``"256MB"`` → 268435456 (binary units B, KB, MB, GB).

    Raises:
        ValueError: unrecognised text or a size < 4 bytes.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?B)\s*", text.upper())
    if not match:
        raise ValueError(f"size must look like 4B, 1KB, 64MB or 1GB, got {text!r}")
    size = int(match.group(1)) * UNITS[match.group(2)]
    if size < 4:
        raise ValueError(f"size must be at least 4 bytes (one float32), got {text!r}")
    return size


def size_range(spec: str, factor: int = 4) -> list[int]:
    """``"1KB..256MB"`` → sizes from 1 KiB to 256 MiB, each ``factor`` times the last.

    Raises:
        ValueError: malformed spec, start > end, or factor < 2.
    """
    if factor < 2:
        raise ValueError(f"factor must be >= 2, got {factor}")
    start_text, dots, end_text = spec.partition("..")
    start = parse_size(start_text)
    end = parse_size(end_text) if dots else start
    if start > end:
        raise ValueError(f"sizes must go from small to large, got {spec!r}")
    sizes = [start]
    while sizes[-1] * factor <= end:
        sizes.append(sizes[-1] * factor)
    return sizes


def bus_factor(k: int) -> float:
    """busbw / algbw = 2(k−1)/k."""
    return 2 * (k - 1) / k


def iterations_for(size: int, iters: int) -> int:
    """Fewer iterations for large messages: at most ``iters``, at least 3, ~1 GiB moved per size."""
    return int(max(3, min(iters, 2**30 // size)))


def _records(impl: str, per_rank_times: list[list[float]], size: int, k: int) -> dict:
    slowest = np.max(np.asarray(per_rank_times), axis=0)
    t = float(np.median(slowest))
    algbw = size / t
    return {"kind": "allreduce", "rank": 0, "world_size": k, "impl": impl, "size_bytes": size, "time_s": t,
            "time_s_min": float(slowest.min()), "iterations": len(slowest), "algbw_gbps": algbw / 1e9,
            "busbw_gbps": algbw * bus_factor(k) / 1e9}


def _peer_group(hvd, rank: int, size: int, backend: str):
    """Start ``torch.distributed`` (``backend``: Gloo, or NCCL for device tensors) beside Horovod; rank 0
    picks the address and port."""
    import torch.distributed as dist

    endpoint = None
    if rank == 0:
        with socket.socket() as s:
            s.bind(("", 0))
            endpoint = (socket.gethostbyname(socket.gethostname()) if size > 1 else "127.0.0.1", s.getsockname()[1])
    host, port = hvd.broadcast_object(endpoint, root_rank=0, name="harness.peer_endpoint")
    dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=rank, world_size=size)
    return dist


def allreduce_device(requested: str, local_rank: int):
    """The device whose tensors are allreduced: the one training uses (:func:`backends.torch.device.resolve_device`).

    ``auto`` is this rank's GPU when CUDA is available (Horovod then reduces device tensors with NCCL,
    when it was built with it: the path training takes on a GPU cluster), else the CPU (Horovod's
    host path, Gloo or MPI).

    Raises:
        ConfigError: an unknown device, or ``cuda`` without a GPU for this local rank.
    """
    from backends.torch.device import resolve_device

    return resolve_device(requested, local_rank)


def run_allreduce(sizes: list[int], *, iters: int = 20, warmup: int = 3, peer: bool = True,
                  device: str = "auto") -> list[dict]:
    """Allreduce float32 tensors of each size with Horovod (and ``torch.distributed`` as the peer), on every rank.

    Must run under a launcher (or alone, k = 1). Uses ``horovod.torch``. Each timed call ends when the
    reduced tensor is ready on the device (``torch.cuda.synchronize`` on CUDA), so asynchronous
    completion (``HOROVOD_ENABLE_ASYNC_COMPLETION``) cannot turn it into launch time.

    Args:
        sizes: message sizes in bytes (multiples of 4).
        iters: timed iterations per size (fewer for large sizes: :func:`iterations_for`).
        warmup: untimed iterations per size first.
        peer: also time ``torch.distributed``'s allreduce: Gloo for CPU tensors, NCCL for GPU tensors.
        device: ``"auto"`` (the device training uses: GPU ``local_rank`` when CUDA is available),
            ``"cpu"`` or ``"cuda"``.

    Returns:
        One record per (implementation, size), kind ``allreduce``: ``size_bytes``, ``time_s``
        (median of the slowest rank), ``algbw_gbps`` and ``busbw_gbps`` (10⁹ bytes/s), and ``device``
        (``"cpu"`` or ``"cuda"``). Only rank 0's return value is complete.

    Raises:
        ConfigError: an unknown device, or ``cuda`` without a GPU for this local rank.
    """
    import horovod.torch as hvd
    import torch

    hvd.init()
    rank, k = hvd.rank(), hvd.size()
    where = allreduce_device(device, hvd.local_rank())
    backend = "nccl" if where.type == "cuda" else "gloo"
    dist = _peer_group(hvd, rank, k, backend) if peer else None
    done = (lambda: torch.cuda.synchronize(where)) if where.type == "cuda" else (lambda: None)
    records = []
    for size in sizes:
        tensor = torch.ones(size // 4, dtype=torch.float32, device=where)
        count = iterations_for(size, iters)
        impls = {"horovod": lambda: (hvd.allreduce_(tensor, op=hvd.Sum, name=f"bench.{size}"), done())}
        if dist:
            impls[f"torch.distributed-{backend}"] = lambda: (dist.all_reduce(tensor), done())
        for impl, op in impls.items():
            times = hvd.allgather_object(time_calls(op, count, warmup), name=f"bench.times.{impl}.{size}")
            records.append({**_records(impl, times, size, k), "device": where.type})
    if dist:
        dist.destroy_process_group()
    return records
