"""GPU pinning and mixed precision for the Keras engine, Horovod's documented way for TensorFlow.

Each rank makes only its local GPU visible (``tf.config.set_visible_devices``) with memory growth,
before any tensor is created, so eight ranks on an 8-GPU host do not each reserve all eight GPUs.
Mixed precision is a Keras dtype policy (``mixed_bfloat16``, ``mixed_float16``): variables and the
optimizer update stay float32.
"""

from __future__ import annotations

import socket

from harness.runtime.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def visible_gpus(gpus: list, local_rank: int, requested: str) -> list | None:
    """Which of TensorFlow's physical GPUs this rank should see.

    Args:
        gpus: ``tf.config.list_physical_devices("GPU")`` (any list works, for tests).
        local_rank: this rank's index on its host.
        requested: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``[gpus[local_rank]]``, ``[]`` to hide every GPU (``cpu``), or None to change nothing
        (``auto`` on a host without GPUs).

    Raises:
        ConfigError: an unknown device; (host-local) ``cuda`` without a GPU for this local rank,
            naming the host, the local rank and the GPU count.
    """
    if requested not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {requested!r}")
    if requested == "cpu":
        return []
    if not gpus and requested == "auto":
        return None
    if local_rank >= len(gpus):
        raise ConfigError(f"host {socket.gethostname()}: local rank {local_rank} has no GPU ({len(gpus)} visible); "
                          "launch at most one rank per GPU on each host", local=True)
    return [gpus[local_rank]]


def pin_local_gpu(tf, local_rank: int, requested: str) -> dict:
    """Make only this rank's GPU visible, with memory growth; returns the device record.

    Must run before TensorFlow creates a tensor (TensorFlow refuses afterwards).
    """
    gpus = tf.config.list_physical_devices("GPU")
    chosen = visible_gpus(gpus, local_rank, requested)
    if chosen is None:
        return {"type": "cpu", "name": "cpu", "count_per_node": 1}
    if gpus:
        tf.config.set_visible_devices(chosen, "GPU")
    for gpu in chosen:
        tf.config.experimental.set_memory_growth(gpu, True)
    if not chosen:
        return {"type": "cpu", "name": "cpu", "count_per_node": 1}
    details = tf.config.experimental.get_device_details(chosen[0])
    build = tf.sysconfig.get_build_info()
    return {"type": "cuda", "name": details.get("device_name", chosen[0].name), "count_per_node": len(gpus),
            "index": local_rank, "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}


def policy_name(precision: str) -> str:
    """The Keras dtype policy for ``precision``.

    Raises:
        ConfigError: an unknown precision.
    """
    if precision not in POLICIES:
        raise ConfigError(f"--precision must be one of {', '.join(POLICIES)}, got {precision!r}")
    return POLICIES[precision]
