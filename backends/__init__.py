"""Framework backends: thin ports of the numpy core (:mod:`harness`) plus Horovod wiring.

:func:`make_engine` starts the engine for a backend by name, importing its framework only then.
"""

from __future__ import annotations

import importlib

from harness.runtime.config import check_choice
from harness.runtime.errors import ConfigError

BACKENDS = ("torch", "keras")
_ENGINES = {"torch": ("backends.torch.engine", "TorchEngine"), "keras": ("backends.keras.engine", "KerasEngine")}


def make_engine(backend: str, *, threads: int | None = None, nonfinite: str = "stop", device: str = "auto",
                precision: str = "fp32", channels_last: bool = False):
    """Start one Horovod worker of ``backend`` (calls ``hvd.init()``).

    Args:
        backend: ``"torch"`` or ``"keras"``.
        threads: intra-op threads for this rank (None: the framework's default).
        nonfinite: ``"stop"`` or ``"skip"`` a step whose averaged gradient is not finite.
        device: ``"auto"`` (this rank's local GPU when there is one), ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (mixed precision; fp32 master weights).
        channels_last: torch only: channels-last memory format for convolutional models.

    Returns:
        An engine implementing :class:`harness.runtime.engine.Engine`.

    Raises:
        harness.runtime.errors.ConfigError: (a ``ValueError``) an unknown backend, or ``channels_last``
            asked of Keras (channels-last already).
        harness.runtime.errors.ConfigError: no GPU for this rank's local rank (host-local).
    """
    check_choice("backend", backend, BACKENDS)
    module, name = _ENGINES[backend]
    options = dict(threads=threads, nonfinite=nonfinite, device=device, precision=precision)
    if backend == "torch":
        options["channels_last"] = channels_last
    elif channels_last:
        raise ConfigError("channels_last is a torch option: Keras models here are channels-last already",
                          fields=("channels_last",))
    return getattr(importlib.import_module(module), name)(**options)
