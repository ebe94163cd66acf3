"""The interface every training engine provides to the framework-free runtime.

The loop (:mod:`harness.runtime.loop`) and the benchmarks drive an engine through this protocol
only; :class:`backends.torch.engine.TorchEngine` and :class:`backends.keras.engine.KerasEngine`
implement it on one shared Horovod base (:class:`backends.base.HorovodEngine`), the way Horovod
keeps one implementation behind its PyTorch and Keras integrations.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from harness.recipe import Recipe


@runtime_checkable
class Engine(Protocol):
    """One data-parallel worker (rank) of a training job.

    Attributes:
        name: the backend's name (``"torch"``, ``"keras"``).
        rank: this worker's rank in [0, size).
        size: k, the world size.
        local_rank: this worker's rank on its host (selects its GPU).
        threads: intra-op threads this rank computes with.
        nonfinite_skipped: steps skipped because the averaged gradient was not finite.
        loss_scale_skips: fp16 steps skipped as loss-scale overflows (0 without fp16).
    """

    name: str
    rank: int
    size: int
    local_rank: int
    threads: int
    nonfinite_skipped: int
    loss_scale_skips: int

    def build(self, recipe: Recipe, *, model: Any, input_shape: tuple[int, int, int], num_classes: int, seed: int,
              fp16_allreduce: bool = False, broadcast: bool = True, input_normalization=None) -> None:
        """Create the model and the distributed optimizer; rank 0's weights win.

        Args:
            model: a built-in model name, or a builder ``f(input_shape, num_classes)``.
            input_shape: (C, H, W) of one image.
            broadcast: broadcast rank 0's weights now (False: an elastic run's first sync does it).
            input_normalization: (mean, std) per channel, for sources that give uint8 images
                (:class:`harness.runtime.pipeline.ImageSource`): the engine normalises them on its device
                as ``(x / 255 − mean) / std`` (:func:`harness.augment.normalize`). The runtime passes it
                only for such sources, so an engine that reads float images only may leave it out.

        Raises:
            ValueError: unknown model, or a builder that fails or returns the wrong type.
        """

    @property
    def lr(self) -> float:
        """The LR the next step will use."""

    def prepare(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]) -> Any:
        """A step's micro-batches as :meth:`train_step` takes them. The loop calls it one step ahead,
        so an engine can start host→device copies while the current step runs; it may return them
        unchanged. Images are float32 (N, C, H, W), or uint8 (N, H, W, C) from an image source (to be
        normalised on the device with ``input_normalization``)."""

    def train_step(self, micro_batches: Any) -> Any:
        """One optimizer step over ``accumulation_steps`` micro-batches of (N, C, H, W) float32 images
        and (N,) int64 labels (as given, or as :meth:`prepare` returned them).

        Returns:
            This rank's mean training loss: a float, or a 0-d device tensor that the loop reads with
            ``float()`` only at its read-outs (a host sync).

        Raises:
            harness.errors.NonFiniteError: the averaged gradient was not finite under ``stop``.
        """

    def synchronize(self) -> None:
        """Wait until this rank's queued device work is done (the loop ends each step's timing here,
        so a device that runs asynchronously reports step time, not launch time); a no-op on a CPU."""

    def check_pending(self) -> None:
        """Raise what the engine checked without a host read (the loop calls this at each loss
        read-out and before each checkpoint); the Horovod engines decide every step before the
        update, so theirs has nothing to raise.

        Raises:
            harness.errors.NonFiniteError: a deferred non-finite gradient under ``stop``.
        """

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Summed loss, number correct and count on this rank's images (float32 NCHW, or uint8 NHWC as
        in :meth:`prepare`): float64 (3,)."""

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a float64 array over all ranks."""

    def allgather_object(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order."""

    def broadcast_object(self, obj: Any, root_rank: int = 0) -> Any:
        """Rank ``root_rank``'s ``obj`` on every rank."""

    def flat_parameters(self) -> np.ndarray:
        """All trainable parameters concatenated, float64."""

    def horovod_settings(self) -> dict:
        """The Horovod controller and build facts in force, for records."""

    def device_info(self) -> dict:
        """This rank's device for records: ``type`` (``"cpu"``/``"cuda"``), ``name``, ``count_per_node``,
        ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``), ``channels_last`` and, on a GPU, ``index`` and
        the CUDA/cuDNN/NCCL versions."""

    def get_state(self) -> dict:
        """Model, optimizer buffers, LR step and RNG: a picklable dict."""

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s dict (after :meth:`build`)."""

    def shutdown(self) -> None:
        """Release Horovod."""


@runtime_checkable
class ElasticEngine(Engine, Protocol):
    """An :class:`Engine` that can run under Horovod's elastic driver (``harness train --elastic``)."""

    def refresh_topology(self) -> None:
        """Re-read rank, k and local rank after a reset."""

    def rescale(self, recipe: Recipe, step: int) -> None:
        """Continue with ``recipe`` (resolved for the new k) from its step ``step``."""

    def elastic_state(self, position: dict) -> Any:
        """A Horovod elastic state of the engine's state and the loop's ``position`` dict."""

    def elastic_run(self, fn, state) -> Any:
        """``fn(state)`` under ``hvd.elastic.run``."""
