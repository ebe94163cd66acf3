"""Horovod for Keras 3 without ``horovod.tensorflow.keras``: allreduce in ``apply``, and callbacks.

Horovod's own tf.keras callbacks call ``keras.backend.get_value``/``constant``, which Keras 3 no
longer has; these use ``horovod.tensorflow`` primitives directly, on the TensorFlow backend.
"""

from __future__ import annotations

import keras
import tensorflow as tf

import horovod.tensorflow as hvd
from backends.keras.optim import LARS, MomentumSGD


def broadcast_variables(variables, root_rank: int = 0) -> None:
    """Copy rank ``root_rank``'s values of Keras variables to every rank, in place.

    ``hvd.broadcast_variables`` assigns inside a graph, which Keras 3 variables do not allow;
    this broadcasts each value with ``hvd.broadcast`` and assigns through Keras.
    """
    for i, variable in enumerate(variables):
        variable.assign(hvd.broadcast(variable.value, root_rank=root_rank, name=f"harness.bcast_var.{i}"))


class _HorovodAllreduce:
    """Average gradients over the k workers (one grouped allreduce) before the update.

    Mixed in front of an optimizer class; ``compression`` is ``hvd.Compression.none`` or
    ``hvd.Compression.fp16``.
    """

    def __init__(self, *args, compression=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.compression = compression or hvd.Compression.none

    def apply(self, grads, trainable_variables=None):
        """Allreduce-average ``grads``, then apply them as the wrapped optimizer does, if finite.

        Returns:
            A boolean tensor: whether the averaged gradients were finite and the update applied.
            A non-finite step changes no variable (iterations, hence the LR schedule, included).
        """
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


class BroadcastInitialVariables(keras.callbacks.Callback):
    """At the start of ``fit``, copy rank 0's model and optimizer variables to every rank.

    The optimizer is built first, so its slots (momentum buffers) exist and are broadcast too.
    """

    def __init__(self, root_rank: int = 0):
        super().__init__()
        self.root_rank = root_rank

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        optimizer.build(self.model.trainable_variables)
        broadcast_variables(self.model.variables + list(optimizer.variables), root_rank=self.root_rank)


class MetricAverage(keras.callbacks.Callback):
    """Replace each epoch's metrics in ``logs`` with their average over all ranks.

    Must come before callbacks that read ``logs`` (progress, checkpoints).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs and hvd.size() > 1:
            names = sorted(logs)
            values = hvd.allreduce(tf.constant([float(logs[n]) for n in names], dtype=tf.float64), op=hvd.Average,
                                   name=f"metric_average_{epoch}")
            logs.update({n: float(v) for n, v in zip(names, values.numpy())})


def rank0_only(*callbacks: keras.callbacks.Callback) -> list[keras.callbacks.Callback]:
    """``callbacks`` on rank 0 and nothing elsewhere: logging, progress and checkpoints."""
    return list(callbacks) if hvd.rank() == 0 else []
