"""Horovod for Keras 3 without ``horovod.tensorflow.keras``: allreduce in ``apply``, and callbacks.

Horovod's own tf.keras callbacks call ``keras.backend.get_value``/``constant``, which Keras 3 no
longer has; these use ``horovod.tensorflow`` primitives directly, on the TensorFlow backend. The
distributed optimizers are declared classes, one per optimizer (no ``type()`` at run time):
:func:`DistributedOptimizer` picks the one for a given :class:`LARS` or :class:`MomentumSGD`.

The grouped allreduce has no XLA kernel in this build (``scripts/setup.sh`` leaves Horovod's XLA ops
out), so ``apply`` refuses to be traced under XLA: compile with ``jit_compile=False``.
"""

from __future__ import annotations

import horovod.tensorflow as hvd
import keras
import tensorflow as tf
from tensorflow.python.ops import control_flow_util  # is the graph being traced compiled by XLA?

from backends.keras.optim import LARS, MomentumSGD

COMPRESSIONS = ("none", "fp16")
XLA_ERROR = ("Horovod allreduce cannot run under XLA (jit_compile=True): compile the model with "
             "jit_compile=False")


def _compression(compression):
    """``"none"``/``"fp16"`` (or None) → ``hvd.Compression.*``; a Horovod compressor passes through."""
    if compression is None or not isinstance(compression, str):
        return compression or hvd.Compression.none
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    return getattr(hvd.Compression, compression)


def under_xla() -> bool:
    """Whether the function being traced now will be compiled by XLA (``jit_compile=True``).

    ``tf.function(jit_compile=True)`` traces its body inside an XLA control-flow context; this
    looks for one around the current graph and its outer graphs. False when executing eagerly.
    """
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def broadcast_variables(variables, root_rank: int = 0) -> None:
    """Copy rank ``root_rank``'s values of Keras variables to every rank, in place.

    ``hvd.broadcast_variables`` assigns inside a graph, which Keras 3 variables do not allow;
    this broadcasts each value with ``hvd.broadcast`` and assigns through Keras.
    """
    for i, variable in enumerate(variables):
        variable.assign(hvd.broadcast(variable.value, root_rank=root_rank, name=f"harness.bcast_var.{i}"))


def broadcast_initial_state(model: keras.Model, optimizer: keras.optimizers.Optimizer, *, root_rank: int = 0) -> None:
    """Copy rank ``root_rank``'s model and optimizer variables to every rank, in place.

    The optimizer is built on the model's trainable variables first, so its slots (momentum
    buffers) exist and are copied too. Call once before training (``model.fit`` users:
    :class:`BroadcastInitialVariables`).
    """
    optimizer.build(model.trainable_variables)
    broadcast_variables(model.variables + list(optimizer.variables), root_rank=root_rank)


class _HorovodAllreduce:
    """Average gradients over the k workers (one grouped allreduce) before the update.

    Mixed in front of an optimizer class; ``compression`` is ``"none"``, ``"fp16"`` or a Horovod
    compressor.
    """

    def __init__(self, *args, compression="none", **kwargs):
        super().__init__(*args, **kwargs)
        self.compression = _compression(compression)

    def apply(self, grads, trainable_variables=None):
        """Allreduce-average ``grads``, then apply them as the wrapped optimizer does, if finite.

        Returns:
            A boolean tensor: whether the averaged gradients were finite and the update applied.
            A non-finite step changes no variable (iterations, hence the LR schedule, included).

        Raises:
            RuntimeError: when traced for XLA (``jit_compile=True``), on one rank as on k.
        """
        if under_xla():
            raise RuntimeError(XLA_ERROR)
        if hvd.size() > 1:
            grads = hvd.grouped_allreduce(list(grads), op=hvd.Average, compression=self.compression)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

        def update():
            super(_HorovodAllreduce, self).apply(grads, trainable_variables)
            return tf.constant(True)

        return tf.cond(finite, update, lambda: tf.constant(False))


class DistributedMomentumSGD(_HorovodAllreduce, MomentumSGD):
    """:class:`~backends.keras.optim.MomentumSGD` with gradients averaged over Horovod workers."""


class DistributedLARS(_HorovodAllreduce, LARS):
    """:class:`~backends.keras.optim.LARS` with gradients averaged over Horovod workers."""


_DISTRIBUTED = {LARS: DistributedLARS, MomentumSGD: DistributedMomentumSGD}


def DistributedOptimizer(optimizer: LARS | MomentumSGD, *, compression="none"):  # noqa: N802
    """The distributed version of ``optimizer``: same hyperparameters and LR schedule, gradients
    averaged over the k Horovod workers in ``apply`` (one grouped allreduce).

    Args:
        optimizer: a :class:`~backends.keras.optim.LARS` or :class:`~backends.keras.optim.MomentumSGD`,
            not yet built (not yet used).
        compression: ``"none"``, ``"fp16"`` (allreduce in half precision) or a Horovod compressor.

    Returns:
        A :class:`DistributedLARS` or :class:`DistributedMomentumSGD`.

    Raises:
        ValueError: another optimizer class, an optimizer already built, or an unknown compression.
    """
    cls = _DISTRIBUTED.get(type(optimizer))
    if cls is None:
        raise ValueError(f"DistributedOptimizer takes a backends.keras LARS or MomentumSGD, "
                         f"got {type(optimizer).__name__}")
    if optimizer.built:
        raise ValueError("DistributedOptimizer takes an optimizer that is not built yet: its state would be lost")
    config = optimizer.get_config()
    config.update(exclude=optimizer.exclude)  # the rule itself, not its serialised form
    if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        config.update(learning_rate=optimizer._learning_rate)  # the schedule itself
    return cls(**config, compression=compression)


class BroadcastInitialVariables(keras.callbacks.Callback):
    """At the start of ``fit``, copy rank 0's model and optimizer variables to every rank
    (:func:`broadcast_initial_state`)."""

    def __init__(self, root_rank: int = 0):
        super().__init__()
        self.root_rank = root_rank

    def on_train_begin(self, logs=None):
        broadcast_initial_state(self.model, self.model.optimizer, root_rank=self.root_rank)


def metric_average(metrics, *, name: str = "harness.metric_average") -> dict[str, float]:
    """``{name: value}`` averaged over all ranks (one allreduce; every rank must call it).

    Args:
        metrics: a mapping of metric names to numbers; every rank passes the same names.
    """
    names = sorted(metrics)
    values = [float(metrics[n]) for n in names]
    if hvd.size() > 1 and names:
        values = hvd.allreduce(tf.constant(values, dtype=tf.float64), op=hvd.Average, name=name).numpy().tolist()
    return dict(zip(names, values))


class MetricAverage(keras.callbacks.Callback):
    """Replace each epoch's metrics in ``logs`` with their average over all ranks (:func:`metric_average`).

    Must come before callbacks that read ``logs`` (progress, checkpoints).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs:
            logs.update(metric_average(logs, name=f"metric_average_{epoch}"))


def rank0_only(*items) -> list:
    """``items`` on rank 0 and nothing elsewhere: logging, progress and checkpoint callbacks."""
    return list(items) if hvd.rank() == 0 else []
