"""Device placement and mixed precision for the torch engine, Horovod's documented way.

One GPU per local rank: ``torch.cuda.set_device(hvd.local_rank())`` before anything is built
(Horovod's PyTorch guide), model and batches on that device, host→device copies from pinned memory
with ``non_blocking=True``. Mixed precision is :func:`torch.autocast` (bf16, or fp16 with a
``GradScaler``); parameters, gradients and the optimizer update stay fp32 (master weights).
"""

from __future__ import annotations

import contextlib
import socket

import torch

from harness.runtime.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: str, local_rank: int) -> torch.device:
    """The device this rank computes on, made current for CUDA.

    Args:
        requested: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        local_rank: this rank's index on its host; it selects GPU ``cuda:local_rank``.

    Raises:
        ConfigError: (host-local) ``cuda`` without a CUDA device, or a local rank with no GPU of its
            own, naming the host, the local rank and the GPU count.
    """
    if requested not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {requested!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "cpu" or (requested == "auto" and count == 0):
        return torch.device("cpu")
    if local_rank >= count:
        raise ConfigError(f"host {socket.gethostname()}: local rank {local_rank} has no GPU ({count} visible); "
                          "launch at most one rank per GPU on each host", local=True)
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`ConfigError` for an unknown precision or fp16 on a CPU (use bf16 there)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 needs a CUDA device; on a CPU use bf16")


def autocast(device: torch.device, precision: str):
    """:func:`torch.autocast` for ``precision`` on ``device``'s type; a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def to_device(array, device: torch.device, *, channels_last: bool = False) -> torch.Tensor:
    """A numpy array as a tensor on ``device``: pinned and copied asynchronously for CUDA."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    if channels_last and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def device_info(device: torch.device) -> dict:
    """What ran where, for records: type, name, GPUs per host and CUDA/cuDNN/NCCL versions (CUDA only)."""
    if device.type != "cuda":
        return {"type": "cpu", "name": "cpu", "count_per_node": 1}
    nccl = torch.cuda.nccl.version() if hasattr(torch.cuda, "nccl") else None
    return {"type": "cuda", "name": torch.cuda.get_device_name(device), "count_per_node": torch.cuda.device_count(),
            "index": device.index, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "nccl": ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl}
