"""Which GPU a rank computes on, and where bf16 is native: rules both engines share, framework-free.

Horovod's guides give one GPU per local rank (``torch.cuda.set_device(hvd.local_rank())``,
``tf.config.set_visible_devices(gpus[hvd.local_rank()], "GPU")``). Schedulers that hand each rank its
own device instead (Slurm's ``--gpus-per-task=1``, ``CUDA_VISIBLE_DEVICES`` set per rank) leave
exactly one GPU visible to every rank: that one is the rank's, whatever its local rank.
"""

from __future__ import annotations

import glob
import os
import socket

from harness.runtime.config import DEVICES, check_choice
from harness.runtime.errors import ConfigError

BF16_NATIVE_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; older GPUs emulate bf16, slower than fp32


def check_device(requested: str) -> None:
    """Raise :class:`ConfigError` unless ``requested`` is one of ``auto``, ``cpu``, ``cuda``."""
    check_choice("device", requested, DEVICES)


def local_gpu_index(local_rank: int, visible: int) -> int:
    """The index, among the GPUs this process sees, of the one this rank uses.

    Args:
        local_rank: this rank's index on its host (``hvd.local_rank()``).
        visible: how many GPUs this process sees (after ``CUDA_VISIBLE_DEVICES``).

    Returns:
        0 when exactly one GPU is visible (the scheduler gave this rank its own), else ``local_rank``.

    Raises:
        ConfigError: (host-local) no GPU visible, or more than one visible and fewer than
            ``local_rank + 1``; the message names the host, the local rank and the GPU count.

    Example::

        >>> local_gpu_index(3, 1), local_gpu_index(3, 8)
        (0, 3)
    """
    if visible == 1:
        return 0
    if local_rank >= visible:
        raise ConfigError(f"host {socket.gethostname()}: local rank {local_rank} has no GPU ({visible} visible); "
                          "launch at most one rank per GPU on each host", local=True)
    return local_rank


def check_bf16_native(capability: tuple[int, int] | None, name: str) -> None:
    """Refuse bf16 on a GPU that only emulates it (compute capability below 8.0, before Ampere).

    Args:
        capability: the GPU's (major, minor) compute capability; None when unknown (then nothing is
            refused).
        name: the GPU's name, for the message.

    Raises:
        ConfigError: (host-local) bf16 on a pre-Ampere GPU, naming it and its capability.
    """
    if capability is not None and tuple(capability) < BF16_NATIVE_CAPABILITY:
        major, minor = capability
        raise ConfigError(f"precision bf16: {name} (compute capability {major}.{minor}) only emulates bfloat16, "
                          "slower than fp32; use fp16 (loss scaling) or fp32 there", local=True, fields=("precision",))


def gpus_visible() -> bool:
    """Whether this process will see an NVIDIA GPU, without importing a framework: a device node
    (``/dev/nvidia0``...) and a ``CUDA_VISIBLE_DEVICES`` that does not hide them all."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1", "none", "NoDevFiles"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def computes_on_gpu(device: str) -> bool:
    """Whether a run asking for ``device`` (``auto``, ``cpu``, ``cuda``) computes on a GPU."""
    return device == "cuda" or (device == "auto" and gpus_visible())
