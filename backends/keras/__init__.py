"""Keras 3 backend (TensorFlow): the same public names as :mod:`backends.torch`, for the same things.

``LARS`` and ``MomentumSGD`` (optimizers; LARS applies momentum correction itself), ``RecipeLR``
(the recipe's ``LearningRateSchedule``), the ``bias_and_norm`` exclusion rule (the optimizers'
``exclude``), and the Horovod wiring: ``DistributedOptimizer``, ``broadcast_initial_state``,
``metric_average``, ``rank0_only``, and the ``model.fit`` callbacks ``BroadcastInitialVariables``
and ``MetricAverage``; ``pin_gpu`` (one GPU per local rank, Horovod's TensorFlow 2 way) and
``normalize_images`` (uint8 batches of the image pipeline normalised on the device).

Importing this package imports neither Keras, TensorFlow nor Horovod: each name loads its module on
first use (PEP 562). It selects Keras's TensorFlow backend unless ``KERAS_BACKEND`` is set.
"""

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_HOMES = {
    "LARS": "optim", "MomentumSGD": "optim", "bias_and_norm": "optim", "RecipeLR": "schedule",
    "DistributedOptimizer": "distributed", "broadcast_initial_state": "distributed",
    "metric_average": "distributed", "rank0_only": "distributed", "BroadcastInitialVariables": "distributed",
    "MetricAverage": "distributed", "pin_gpu": "device", "normalize_images": "device",
    "RecipeSchedule": "schedule",  # deprecated name of RecipeLR
}
__all__ = ["BroadcastInitialVariables", "DistributedOptimizer", "LARS", "MetricAverage", "MomentumSGD", "RecipeLR",
           "bias_and_norm", "broadcast_initial_state", "metric_average", "normalize_images", "pin_gpu", "rank0_only"]


def __getattr__(name: str):
    """Import the module that defines ``name`` (keras, tensorflow, horovod with it) and return it."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
