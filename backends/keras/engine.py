"""Keras 3 (TensorFlow backend) + ``horovod.tensorflow`` engine behind ``harness train --backend keras``.

Implements :class:`harness.runtime.engine.Engine` on the shared :class:`backends.base.HorovodEngine`,
as :class:`backends.torch.engine.TorchEngine` does, so the framework-free loop in
:mod:`harness.runtime.loop` writes the same records and summary. Gradients are computed per
micro-batch, summed over ``accumulation_steps`` and averaged over k in the optimizer's ``apply``
(one grouped allreduce): the gradient is normalised by kn as in the torch backend.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import horovod.tensorflow as hvd  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from backends.base import HorovodEngine, PreparedBatch  # noqa: E402
from backends.keras.device import check_policy_device, normalize_images, pin_local_gpu, policy_name  # noqa: E402
from backends.keras.distributed import DistributedOptimizer, broadcast_initial_state  # noqa: E402
from backends.keras.models import build_model  # noqa: E402
from backends.keras.optim import LARS, MomentumSGD  # noqa: E402
from backends.keras.schedule import RecipeLR  # noqa: E402
from harness.recipe import Recipe  # noqa: E402
from harness.runtime.models import UserModel  # noqa: E402
from harness.runtime.records import usable_cpus  # noqa: E402


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W, C), contiguous float32."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)), dtype=np.float32)


def build_optimizer(recipe: Recipe, *, fp16_allreduce: bool = False):
    """The recipe's optimizer with its LR schedule, averaging gradients over Horovod workers."""
    common = dict(momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    if recipe.optimizer == "lars":
        optimizer = LARS(RecipeLR(recipe), trust_coefficient=recipe.trust_coefficient, eps=recipe.lars_eps,
                         trust_clip=recipe.trust_clip, momentum_correction=recipe.momentum_correction, **common)
    else:
        optimizer = MomentumSGD(RecipeLR(recipe), **common)
    return DistributedOptimizer(optimizer, compression="fp16" if fp16_allreduce else "none")


class KerasEngine(HorovodEngine):
    """One Horovod worker running the recipe with Keras 3.

    Args:
        threads: intra-op threads for this rank; ``None`` keeps TensorFlow's default.
        nonfinite: ``"stop"`` or ``"skip"`` (:class:`backends.base.HorovodEngine`).
        device: ``"auto"`` (only GPU ``local_rank`` visible when there are GPUs), ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, ``"bf16"`` (``mixed_bfloat16``) or ``"fp16"`` (``mixed_float16`` with
            dynamic loss scaling applied after the allreduce, so every rank skips the same steps).

    Raises:
        ConfigError: no GPU for this local rank, an unknown precision, or bf16 on a GPU that only emulates it.
    """

    name = "keras"
    LOSS_SCALE_PERIOD = 2000  # finite steps before the fp16 loss scale doubles (Keras's default)

    def __init__(self, *, threads: int | None = None, nonfinite: str = "stop", device: str = "auto",
                 precision: str = "fp32"):
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        super().__init__(hvd, threads=threads or usable_cpus(), nonfinite=nonfinite)
        self._device = pin_local_gpu(tf, self.local_rank, device)  # before any tensor exists
        self.precision, self._policy = precision, policy_name(precision)
        check_policy_device(precision, self._device)
        self.loss_scale = 2.0 ** 15 if precision == "fp16" else 1.0
        self._finite_run = 0
        self.model = self.optimizer = None
        self._normalization = None  # (mean, std) tf constants for uint8 images
        self._loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def _tensor(self, values: np.ndarray) -> tf.Tensor:
        return tf.constant(values)

    def device_info(self) -> dict:
        """This rank's device and precision, for records."""
        return {**self._device, "precision": self.precision, "channels_last": True}

    def build(self, recipe: Recipe, *, model: str | UserModel, input_shape, num_classes: int, seed: int,
              fp16_allreduce: bool = False, broadcast: bool = True, input_normalization=None) -> None:
        """Create the model and optimizer and copy rank 0's variables to every rank.

        ``input_normalization``: (mean, std) per channel for uint8 NHWC images, applied on the device
        inside the compiled step (:class:`harness.runtime.engine.Engine`).

        Raises:
            ValueError: unknown model name, or a user's builder that raised or returned no ``keras.Model``.
        """
        keras.utils.set_random_seed(seed)
        if input_normalization is not None:
            self._normalization = tuple(tuple(float(c) for c in v) for v in input_normalization)
        keras.mixed_precision.set_dtype_policy(self._policy)
        c, h, w = input_shape
        self.model = (build_model(model, input_shape=(h, w, c), num_classes=num_classes) if isinstance(model, str)
                      else model.build((h, w, c), num_classes, keras.Model))
        self.recipe = recipe
        self.optimizer = build_optimizer(recipe, fp16_allreduce=fp16_allreduce)
        if broadcast:
            broadcast_initial_state(self.model, self.optimizer)
        self._classes = num_classes
        # Label smoothing (the MLPerf reference's loss, harness.losses.cross_entropy): Keras's categorical
        # cross-entropy on one-hot targets smooths them to (1 − ε)·one-hot + ε/C, as torch does.
        self._train_loss = (keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                 label_smoothing=recipe.label_smoothing)
                            if recipe.label_smoothing else None)
        self._grads = tf.function(self._gradients, reduce_retracing=True)
        self._apply = tf.function(lambda grads: self.optimizer.apply(grads, self.model.trainable_variables))

    def _gradients(self, x, y, scale):
        """Training loss (float32 logits; label-smoothed with ``recipe.label_smoothing``) and the gradient
        of ``loss × scale`` (the fp16 loss scale, else 1)."""
        x = self._inputs(x)
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(x, training=True), tf.float32)
            loss = (self._train_loss(tf.one_hot(y, self._classes), logits) if self._train_loss is not None
                    else self._loss(y, logits))
            scaled = loss * scale
        return loss, tape.gradient(scaled, self.model.trainable_variables)

    def _inputs(self, x):
        """uint8 NHWC images normalised on the device, ``(x / 255 − mean) / std``; float images as they are."""
        if x.dtype != tf.uint8:
            return x
        if self._normalization is None:
            raise ValueError("uint8 images need build(input_normalization=(mean, std))")
        return normalize_images(x, self._normalization)

    @property
    def lr(self) -> float:
        """The LR the next step will use."""
        return float(self.optimizer.learning_rate)

    def prepare(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """NCHW float micro-batches as channels-last arrays (done one step ahead by the loop); uint8
        NHWC images stay as they are (channels-last already; normalised in the step)."""
        return PreparedBatch((x if x.dtype == np.uint8 else to_channels_last(x), y) for x, y in micro_batches)

    def train_step(self, micro_batches) -> float:
        """One optimizer step over ``accumulation_steps`` micro-batches (NCHW numpy, or :meth:`prepare`'s).

        Returns:
            This rank's mean training loss over its micro-batches.
        """
        if not isinstance(micro_batches, PreparedBatch):
            micro_batches = self.prepare(micro_batches)
        total_loss, summed = 0.0, None
        scale = tf.constant(self.loss_scale, tf.float32)
        for x, y in micro_batches:
            loss, grads = self._grads(x, y, scale)
            total_loss += float(loss)
            summed = list(grads) if summed is None else [a + b for a, b in zip(summed, grads)]
        factor = 1.0 / (len(micro_batches) * self.loss_scale)
        applied = self._apply([g * factor for g in summed] if factor != 1.0 else summed)
        if not bool(applied):
            self._skip()
        elif self.precision == "fp16":
            self.loss_scale_finite()
            self._finite_run += 1
            if self._finite_run == self.LOSS_SCALE_PERIOD:
                self.loss_scale, self._finite_run = self.loss_scale * 2, 0
        return total_loss / len(micro_batches)

    def _skip(self) -> None:
        """A non-finite averaged gradient: an fp16 overflow halves the loss scale (bounded:
        :meth:`backends.base.HorovodEngine.loss_scale_overflow`), else the policy applies."""
        if self.precision == "fp16":
            self.loss_scale_overflow(self.loss_scale)
            self.loss_scale, self._finite_run = max(self.loss_scale / 2, 1.0), 0
        else:
            self.nonfinite_step()

    def evaluate(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
        """Summed cross-entropy, number correct and count on this rank's images: float64 (3,)."""
        loss = correct = 0.0
        for start in range(0, len(x), batch_size):
            part = x[start:start + batch_size]
            images = self._inputs(tf.constant(part)) if part.dtype == np.uint8 else to_channels_last(part)
            logits = tf.cast(self.model(images, training=False), tf.float32)
            target = y[start:start + batch_size]
            loss += float(self._loss(target, logits)) * len(target)
            correct += float(np.sum(np.argmax(logits, axis=1) == target))
        return np.array([loss, correct, len(x)], dtype=np.float64)

    def flat_parameters(self) -> np.ndarray:
        """All trainable variables concatenated, float64."""
        return np.concatenate([np.asarray(v).reshape(-1) for v in self.model.trainable_variables]).astype(np.float64)

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
