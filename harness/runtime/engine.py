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
    """

    name: str
    rank: int
    size: int
    local_rank: int
    threads: int
    nonfinite_skipped: int

    def build(self, recipe: Recipe, *, model: Any, input_shape: tuple[int, int, int], num_classes: int, seed: int,
              fp16_allreduce: bool = False, broadcast: bool = True) -> None:
        """Create the model and the distributed optimizer; rank 0's weights win.

        Args:
            model: a built-in model name, or a builder ``f(input_shape, num_classes)``.
            input_shape: (C, H, W) of one image.
            broadcast: broadcast rank 0's weights now (False: an elastic run's first sync does it).

        Raises:
            ValueError: unknown model, or a builder that fails or returns the wrong type.
        """

    @property
    def lr(self) -> float:
        """The LR the next step will use."""

    def train_step(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """One optimizer step over ``accumulation_steps`` micro-batches of (N, C, H, W) float32 images
        and (N,) int64 labels; returns this rank's mean training loss.

        Raises:
            harness.errors.NonFiniteError: the averaged gradient was not finite under ``stop``.
        """

    def check_pending(self) -> None:
        """Raise what the engine checked on the device without a host read (the loop calls this at
        each loss read-out and before each checkpoint).

        Raises:
            harness.errors.NonFiniteError: a deferred non-finite gradient under ``stop``.
        """

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Summed loss, number correct and count on this rank's images: float64 (3,)."""

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
