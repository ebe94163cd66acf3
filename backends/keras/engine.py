"""Keras 3 (TensorFlow backend) + ``horovod.tensorflow`` engine behind ``harness train --backend keras``.

Same interface as :class:`backends.torch.engine.TorchEngine`, so the framework-free loop in
:mod:`harness_cli.train` writes the same records and summary. Gradients are computed per
micro-batch, summed over ``accumulation_steps`` and averaged over k in the optimizer's ``apply``
(one grouped allreduce): the gradient is normalised by kn as in the torch backend.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import horovod.tensorflow as hvd  # noqa: E402
from backends.keras.distributed import DistributedLARS, DistributedMomentumSGD, broadcast_variables  # noqa: E402
from backends.keras.models import build_model  # noqa: E402
from backends.keras.schedule import RecipeSchedule  # noqa: E402
from harness.errors import NonFiniteError  # noqa: E402
from harness.recipe import Recipe  # noqa: E402


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W, C), contiguous float32."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)), dtype=np.float32)


def build_optimizer(recipe: Recipe, *, fp16_allreduce: bool = False):
    """The recipe's optimizer with its LR schedule, averaging gradients over Horovod workers."""
    compression = hvd.Compression.fp16 if fp16_allreduce else hvd.Compression.none
    common = dict(learning_rate=RecipeSchedule(recipe), momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                  nesterov=recipe.nesterov, compression=compression)
    if recipe.optimizer == "lars":
        return DistributedLARS(trust_coefficient=recipe.trust_coefficient, eps=recipe.lars_eps,
                               trust_clip=recipe.trust_clip, momentum_correction=recipe.momentum_correction, **common)
    return DistributedMomentumSGD(**common)


class KerasEngine:
    """One Horovod worker running the recipe with Keras 3.

    Args:
        threads: intra-op threads for this rank; ``None`` keeps TensorFlow's default.
    """

    name = "keras"

    def __init__(self, *, threads: int | None = None, nonfinite: str = "stop"):
        hvd.init()
        self.nonfinite, self.nonfinite_skipped = nonfinite, 0
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self.threads = threads or os.cpu_count()
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.model = self.optimizer = None
        self._loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def build(self, recipe: Recipe, *, model: str, input_shape, num_classes: int, seed: int,
              fp16_allreduce: bool = False) -> None:
        """Create the model and optimizer and copy rank 0's variables to every rank.

        Raises:
            ValueError: unknown model name.
        """
        keras.utils.set_random_seed(seed)
        c, h, w = input_shape
        self.model = build_model(model, input_shape=(h, w, c), num_classes=num_classes)
        self.recipe = recipe
        self.optimizer = build_optimizer(recipe, fp16_allreduce=fp16_allreduce)
        self.optimizer.build(self.model.trainable_variables)
        broadcast_variables(self.model.variables + list(self.optimizer.variables), root_rank=0)
        self._grads = tf.function(self._gradients, reduce_retracing=True)
        self._apply = tf.function(lambda grads: self.optimizer.apply(grads, self.model.trainable_variables))

    def _gradients(self, x, y):
        with tf.GradientTape() as tape:
            loss = self._loss(y, self.model(x, training=True))
        return loss, tape.gradient(loss, self.model.trainable_variables)

    @property
    def lr(self) -> float:
        """The LR the next step will use."""
        return float(self.optimizer.learning_rate)

    def train_step(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """One optimizer step over ``accumulation_steps`` micro-batches (NCHW numpy in).

        Returns:
            This rank's mean training loss over its micro-batches.
        """
        total_loss, summed = 0.0, None
        for x, y in micro_batches:
            loss, grads = self._grads(to_channels_last(x), y)
            total_loss += float(loss)
            summed = list(grads) if summed is None else [a + b for a, b in zip(summed, grads)]
        scale = 1.0 / len(micro_batches)
        applied = self._apply([g * scale for g in summed] if len(micro_batches) > 1 else summed)
        if not bool(applied):
            if self.nonfinite == "stop":
                raise NonFiniteError("non-finite gradient: the step was not applied")
            self.nonfinite_skipped += 1
        return total_loss * scale

    def evaluate(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
        """Summed cross-entropy, number correct and count on this rank's images: float64 (3,)."""
        loss = correct = 0.0
        for start in range(0, len(x), batch_size):
            logits = self.model(to_channels_last(x[start:start + batch_size]), training=False)
            target = y[start:start + batch_size]
            loss += float(self._loss(target, logits)) * len(target)
            correct += float(np.sum(np.argmax(logits, axis=1) == target))
        return np.array([loss, correct, len(x)], dtype=np.float64)

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a float64 array over all ranks."""
        return hvd.allreduce(tf.constant(np.asarray(values, dtype=np.float64)), op=hvd.Sum, name="harness.sum").numpy()

    def allgather_object(self, obj) -> list:
        """Every rank's ``obj``, in rank order (pickled)."""
        return hvd.allgather_object(obj, name="harness.gather")

    def broadcast_object(self, obj, root_rank: int = 0):
        """Rank ``root_rank``'s ``obj`` on every rank."""
        return hvd.broadcast_object(obj, root_rank=root_rank, name="harness.bcast")

    def flat_parameters(self) -> np.ndarray:
        """All trainable variables concatenated, float64."""
        return np.concatenate([np.asarray(v).reshape(-1) for v in self.model.trainable_variables]).astype(np.float64)

    def horovod_settings(self) -> dict:
        """The Horovod knobs in force on this rank, for records."""
        return {"controller": "gloo" if hvd.gloo_enabled() else "mpi", "nccl_built": bool(hvd.nccl_built())}

    def get_state(self) -> dict:
        """Model and optimizer variables (momentum buffers, iterations) as numpy: a picklable dict."""
        return {"model": [np.asarray(v) for v in self.model.variables],
                "optimizer": [np.asarray(v) for v in self.optimizer.variables],
                "nonfinite_skipped": self.nonfinite_skipped}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s dict (after :meth:`build`)."""
        for variables, values in ((self.model.variables, state["model"]), (self.optimizer.variables, state["optimizer"])):
            if len(variables) != len(values):
                raise ValueError(f"checkpoint holds {len(values)} variables, the model has {len(variables)}")
            for variable, value in zip(variables, values):
                variable.assign(value)
        self.nonfinite_skipped = int(state["nonfinite_skipped"])

    def shutdown(self) -> None:
        """Release Horovod."""
        hvd.shutdown()
