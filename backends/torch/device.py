"""Device placement and mixed precision for the torch engine, Horovod's documented way.

One GPU per local rank: ``torch.cuda.set_device(hvd.local_rank())`` before anything is built
(Horovod's PyTorch guide), model and batches on that device, host→device copies from pinned memory
with ``non_blocking=True``. Mixed precision is :func:`torch.autocast` (bf16, or fp16 with a
``GradScaler``); parameters, gradients and the optimizer update stay fp32 (master weights).
"""

from __future__ import annotations

import contextlib

import torch

from harness.runtime.config import PRECISIONS, check_choice
from harness.runtime.devices import check_bf16_native, check_device, local_gpu_index
from harness.runtime.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: str, local_rank: int) -> torch.device:
    """The device this rank computes on, made current for CUDA.

    Args:
        requested: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        local_rank: this rank's index on its host; it selects GPU ``cuda:local_rank``, or ``cuda:0``
            when exactly one GPU is visible (:func:`harness.runtime.devices.local_gpu_index`).

    Raises:
        ConfigError: (host-local) ``cuda`` without a CUDA device, or a local rank with no GPU of its
            own, naming the host, the local rank and the GPU count.
    """
    check_device(requested)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "cpu" or (requested == "auto" and count == 0):
        return torch.device("cpu")
    index = local_gpu_index(local_rank, count)
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def pin_gpu(device: str = "auto", *, local_rank: int | None = None) -> torch.device:
    """One GPU per local rank for your own torch script, as Horovod's PyTorch guide does.

    Call right after ``hvd.init()`` and before building anything: ``torch.cuda.set_device`` makes
    ``cuda:local_rank`` current (``cuda:0`` when exactly one GPU is visible, as with
    ``CUDA_VISIBLE_DEVICES`` set per rank). On a host without GPUs ``auto`` gives the CPU.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (a GPU is required).
        local_rank: this rank's index on its host; default ``horovod.torch.local_rank()``.

    Returns:
        The ``torch.device`` to put the model and batches on.

    Raises:
        ConfigError: an unknown device, or (host-local) no GPU for this local rank under ``cuda``.

    Example::

        hvd.init()
        device = pin_gpu()
        model = build().to(device)
    """
    if local_rank is None:
        import horovod.torch as hvd

        local_rank = hvd.local_rank()
    return resolve_device(device, local_rank)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision ``device`` cannot run well.

    Raises:
        ConfigError: an unknown precision, fp16 on a CPU (use bf16 there), or bf16 on a GPU that
            only emulates it (compute capability < 8.0: :func:`harness.runtime.devices.check_bf16_native`).
    """
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision fp16 needs a CUDA device; on a CPU use bf16", fields=("precision",))
    if precision == "bf16" and device.type == "cuda":
        check_bf16_native(torch.cuda.get_device_capability(device), torch.cuda.get_device_name(device))


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


def normalize_images(images: torch.Tensor, normalization) -> torch.Tensor:
    """uint8 (N, H, W, C) images, on any device, as float32 (N, C, H, W) ``(x / 255 − mean) / std`` there.

    The result keeps the NHWC memory (channels-last strides: ``.contiguous()`` makes it NCHW-dense).
    :func:`harness.augment.normalize` is the reference (tested equal).

    Args:
        images: a uint8 tensor (N, H, W, C), e.g. a batch of :class:`harness.runtime.pipeline.ImageSource`
            copied to the GPU.
        normalization: ``(mean, std)``, each C floats (``source.normalization``) or tensors of shape
            (1, C, 1, 1) on the images' device.

    Example::

        x = normalize_images(torch.from_numpy(x).to(device, non_blocking=True), source.normalization)
    """
    mean, std = (v if isinstance(v, torch.Tensor) else
                 torch.tensor(v, dtype=torch.float32, device=images.device).reshape(1, -1, 1, 1) for v in normalization)
    return images.permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)


def images_to_device(images, device: torch.device, normalization, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, C) numpy images as normalised float32 (N, C, H, W) on ``device``: the uint8 bytes
    cross (pinned, asynchronously on CUDA), then :func:`normalize_images` runs on the device.

    Args:
        images: numpy uint8 (N, H, W, C).
        normalization: ``(mean, std)`` tensors of shape (1, C, 1, 1) on ``device``.
        channels_last: keep the NHWC memory layout (the permuted view is channels-last already).
    """
    x = normalize_images(to_device(images, device), normalization)
    return x if channels_last else x.contiguous()


def to_cpu(obj):
    """``obj`` with every tensor inside dicts, lists and tuples detached and moved to the CPU (a state
    dict that any rank, CPU or GPU, can unpickle)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(value) for value in obj)
    return obj


def device_info(device: torch.device) -> dict:
    """What ran where, for records: type, name, GPUs per host, compute capability, CUDA/cuDNN/NCCL
    versions and whether cuDNN autotuning (``torch.backends.cudnn.benchmark``) was on (CUDA only)."""
    if device.type != "cuda":
        return {"type": "cpu", "name": "cpu", "count_per_node": 1}
    nccl = torch.cuda.nccl.version() if hasattr(torch.cuda, "nccl") else None
    return {"type": "cuda", "name": torch.cuda.get_device_name(device), "count_per_node": torch.cuda.device_count(),
            "index": device.index, "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "nccl": ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl}
