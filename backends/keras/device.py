"""GPU pinning and mixed precision for the Keras engine, Horovod's documented way for TensorFlow.

Each rank makes only its local GPU visible (``tf.config.set_visible_devices``) with memory growth,
before any tensor is created, so eight ranks on an 8-GPU host do not each reserve all eight GPUs.
Mixed precision is a Keras dtype policy (``mixed_bfloat16``, ``mixed_float16``): variables and the
optimizer update stay float32.
"""

from __future__ import annotations

from harness.runtime.config import PRECISIONS, check_choice
from harness.runtime.devices import check_bf16_native, check_device, local_gpu_index

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def visible_gpus(gpus: list, local_rank: int, requested: str) -> list | None:
    """Which of TensorFlow's physical GPUs this rank should see.

    Args:
        gpus: ``tf.config.list_physical_devices("GPU")`` (any list works, for tests).
        local_rank: this rank's index on its host.
        requested: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        ``[gpus[local_rank]]`` (``[gpus[0]]`` when exactly one GPU is visible: the scheduler gave this
        rank its own), ``[]`` to hide every GPU (``cpu``), or None to change nothing (``auto`` on a host
        without GPUs).

    Raises:
        ConfigError: an unknown device; (host-local) ``cuda`` without a GPU for this local rank,
            naming the host, the local rank and the GPU count.
    """
    check_device(requested)
    if requested == "cpu":
        return []
    if not gpus and requested == "auto":
        return None
    return [gpus[local_gpu_index(local_rank, len(gpus))]]


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
    capability = details.get("compute_capability")
    return {"type": "cuda", "name": details.get("device_name", chosen[0].name), "count_per_node": len(gpus),
            "index": gpus.index(chosen[0]), "compute_capability": ".".join(map(str, capability)) if capability else None,
            "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}


def pin_gpu(device: str = "auto", *, local_rank: int | None = None) -> dict:
    """One GPU per local rank for your own Keras script, as Horovod's TensorFlow 2 guide does.

    Call right after ``hvd.init()`` and before building anything: only this rank's GPU stays visible
    (``tf.config.set_visible_devices``), with memory growth, so k ranks on one host do not all take
    GPU 0 and each other's memory. Exactly one visible GPU (``CUDA_VISIBLE_DEVICES`` set per rank) is
    used whatever the local rank. On a host without GPUs nothing changes.

    Args:
        device: ``"auto"``, ``"cpu"`` (hide every GPU) or ``"cuda"`` (a GPU is required).
        local_rank: this rank's index on its host; default ``horovod.tensorflow.local_rank()``.

    Returns:
        The device record: ``{"type": "cpu" | "cuda", "name", "count_per_node", ...}``.

    Raises:
        ConfigError: an unknown device, or (host-local) no GPU for this local rank under ``cuda``.

    Example::

        hvd.init()
        pin_gpu()  # before the model exists
        model = keras.Sequential([...])
    """
    import tensorflow as tf

    if local_rank is None:
        import horovod.tensorflow as hvd

        local_rank = hvd.local_rank()
    return pin_local_gpu(tf, local_rank, device)


def check_policy_device(precision: str, device: dict) -> None:
    """Refuse bf16 on a GPU that only emulates it (:func:`harness.runtime.devices.check_bf16_native`).

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: :func:`pin_local_gpu`'s record.

    Raises:
        ConfigError: bf16 on a GPU with compute capability below 8.0.
    """
    capability = device.get("compute_capability")
    if precision == "bf16" and device["type"] == "cuda" and capability:
        check_bf16_native(tuple(int(v) for v in capability.split(".")), device["name"])


def policy_name(precision: str) -> str:
    """The Keras dtype policy for ``precision``.

    Raises:
        ConfigError: an unknown precision.
    """
    check_choice("precision", precision, PRECISIONS)
    return POLICIES[precision]


def normalize_images(images, normalization):
    """uint8 (N, H, W, C) images as float32 (N, H, W, C) ``(x / 255 − mean) / std``, on the device that runs it.

    Keras models take channels-last images, so the layout stays NHWC. :func:`harness.augment.normalize`
    is the reference (tested equal, up to the layout).

    Args:
        images: uint8 (N, H, W, C), a tensor or numpy (a batch of
            :class:`harness.runtime.pipeline.ImageSource`).
        normalization: ``(mean, std)``, each C floats (``source.normalization``).

    Example::

        logits = model(normalize_images(x, source.normalization), training=False)
    """
    import tensorflow as tf

    mean, std = (tf.constant(v, tf.float32) for v in normalization)
    return (tf.cast(images, tf.float32) / 255.0 - mean) / std
