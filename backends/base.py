"""The Horovod base both engines share: init, ranks, threads, collectives, non-finite policy.

Horovod keeps one implementation behind its PyTorch and Keras integrations (``horovod/_keras``);
this does the same for :class:`backends.torch.engine.TorchEngine` and
:class:`backends.keras.engine.KerasEngine`. A subclass passes its framework's Horovod module
(``horovod.torch`` or ``horovod.tensorflow``, which share these calls) and implements only what is
framework-specific: build, the training step, evaluation, parameters, state and ``_tensor``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import NonFiniteError
from harness.runtime.config import NONFINITE_POLICIES, check_choice


class PreparedBatch(list):
    """A step's micro-batches after :meth:`HorovodEngine.prepare`: ``train_step`` takes them as they are.

    ``ready`` is what the step must wait for before using them (a CUDA event of the copy stream), or None.
    """

    ready = None


MAX_CONSECUTIVE_LOSS_SCALE_SKIPS = 16  # fp16 overflow skips in a row that end a run under ``stop``
MIN_LOSS_SCALE = 1.0  # an overflow at a loss scale <= this is a non-finite gradient, not a scale too high


class HorovodEngine:
    """One Horovod worker: everything of :class:`harness.runtime.engine.Engine` that is not framework code.

    Args:
        hvd: ``horovod.torch`` or ``horovod.tensorflow``; ``hvd.init()`` is called here.
        threads: intra-op threads this rank computes with (recorded as ``threads``).
        nonfinite: ``"stop"`` raises :class:`~harness.errors.NonFiniteError` on a non-finite
            averaged gradient; ``"skip"`` counts the step in ``nonfinite_skipped`` and goes on.

    Raises:
        ConfigError: (a ``ValueError``) an unknown ``nonfinite`` policy.
    """

    name = "horovod"

    def __init__(self, hvd, *, threads: int, nonfinite: str = "stop"):
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        hvd.init()
        self.hvd, self.threads = hvd, threads
        self.nonfinite, self.nonfinite_skipped = nonfinite, 0
        self.loss_scale_skips, self._consecutive_skips = 0, 0
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()

    def _tensor(self, values: np.ndarray):
        """``values`` as this framework's tensor (for Horovod's collectives)."""
        raise NotImplementedError

    def prepare(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]):
        """A step's micro-batches as :meth:`train_step` takes them (the loop calls this one step ahead,
        so an engine can start host→device copies early); here unchanged."""
        return PreparedBatch(micro_batches)

    def synchronize(self) -> None:
        """Wait for this rank's queued device work (a timing boundary); nothing to wait for on a CPU."""

    def device_info(self) -> dict:
        """This rank's device and precision, for records."""
        return {"type": "cpu", "name": "cpu", "count_per_node": 1, "precision": "fp32", "channels_last": False}

    def nonfinite_step(self) -> None:
        """Apply the non-finite policy to a step whose averaged gradient held NaN or Inf.

        Raises:
            NonFiniteError: under ``stop``; the step was not applied.
        """
        if self.nonfinite == "stop":
            raise NonFiniteError("non-finite gradient: the step was not applied")
        self.nonfinite_skipped += 1

    def loss_scale_overflow(self, scale: float) -> None:
        """Count an fp16 step skipped because its gradient at loss scale ``scale`` was not finite.

        Dynamic loss scaling (Micikevicius et al. 2018, arXiv 1710.03740, §3.2) skips such a step and
        halves the scale. A gradient that is non-finite for another reason (a NaN in the data or the
        weights) overflows at every scale, so under ``stop`` the run ends after
        ``MAX_CONSECUTIVE_LOSS_SCALE_SKIPS`` (16) skips in a row, or at an overflow with the scale
        already <= ``MIN_LOSS_SCALE`` (1.0), whichever comes first; from torch's initial scale 2^16
        both come at the 16th or 17th step. ``skip`` counts and goes on.

        Args:
            scale: the loss scale the overflowing step used.

        Raises:
            NonFiniteError: under ``stop``, at either bound; the step was not applied.
        """
        self.loss_scale_skips += 1
        self._consecutive_skips += 1
        if self.nonfinite != "stop":
            return
        if self._consecutive_skips >= MAX_CONSECUTIVE_LOSS_SCALE_SKIPS or scale <= MIN_LOSS_SCALE:
            raise NonFiniteError(f"non-finite fp16 gradient in {self._consecutive_skips} consecutive steps "
                                 f"(loss scale {scale:g}): not an overflow the loss scale can fix; no step was applied")

    def loss_scale_finite(self) -> None:
        """Note an fp16 step whose gradient was finite (it ends a run of overflow skips)."""
        self._consecutive_skips = 0

    def check_pending(self) -> None:
        """Raise what a deferred check found (an engine that checks on the device without a host read
        per step raises here, at the loop's read-outs and before a checkpoint); nothing to do here.

        Raises:
            NonFiniteError: a deferred non-finite gradient under ``stop``.
        """

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a float64 array over all ranks: an array of the same shape."""
        tensor = self._tensor(np.asarray(values, dtype=np.float64))
        return np.asarray(self.hvd.allreduce(tensor, op=self.hvd.Sum, name="harness.sum"))

    def allgather_object(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order (pickled)."""
        return self.hvd.allgather_object(obj, name="harness.gather")

    def broadcast_object(self, obj: Any, root_rank: int = 0) -> Any:
        """Rank ``root_rank``'s ``obj`` on every rank."""
        return self.hvd.broadcast_object(obj, root_rank=root_rank, name="harness.bcast")

    def horovod_settings(self) -> dict:
        """The Horovod controller, whether CUDA and NCCL were built, and the GPU operations, for records."""
        nccl = bool(self.hvd.nccl_built())
        return {"controller": "gloo" if self.hvd.gloo_enabled() else "mpi", "nccl_built": nccl,
                "cuda_built": bool(self.hvd.cuda_built()), "gpu_operations": "NCCL" if nccl else None}

    def shutdown(self) -> None:
        """Release Horovod."""
        self.hvd.shutdown()

    # -- elastic training (horovodrun --min-np/--max-np --host-discovery-script) -------------------
    def refresh_topology(self) -> None:
        """Re-read rank, k and local rank from Horovod (they change when an elastic job resets)."""
        self.rank, self.size, self.local_rank = self.hvd.rank(), self.hvd.size(), self.hvd.local_rank()

    def elastic_state(self, position: dict):
        """Horovod elastic state holding this engine's :meth:`get_state` and the loop's ``position``.

        ``commit()`` copies both to host memory (and raises ``HostsUpdatedInterrupt`` when hosts were
        added or removed); after a failure ``restore()`` brings back the last commit; ``sync()``
        broadcasts rank 0's commit to every rank, new workers included. The engine state is the one
        checkpoints use (model, optimizer buffers, scheduler step, RNG), so a restored or joined rank
        continues as a resumed run would.

        Args:
            position: a picklable dict of the loop's own state (step, epoch, images consumed, k, ...);
                exposed and updated as ``state.position``.
        """
        from backends.elastic import EngineState

        return EngineState(self, position)

    def elastic_run(self, fn, state):
        """``fn(state)`` under Horovod's elastic driver (``hvd.elastic.run``): after a lost worker or a
        change of hosts Horovod resets, ``state`` is restored or synced, and ``fn`` runs again."""
        return self.hvd.elastic.run(fn)(state)
