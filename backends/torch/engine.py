"""PyTorch + ``horovod.torch`` engine behind ``harness train --backend torch``.

The training loop (:mod:`harness_cli.train`) is framework-free; an engine supplies the model,
the optimizer wired into Horovod's ring-allreduce, one training step, evaluation, and the few
collectives the loop needs. Horovod wiring follows its documented PyTorch usage:
``hvd.DistributedOptimizer`` (named parameters, average over k workers,
``backward_passes_per_step`` for gradient accumulation, optional fp16 compression), then
broadcast of parameters and optimizer state from rank 0.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import horovod.torch as hvd
from backends.torch.models import build_model
from backends.torch.optim import LARS
from backends.torch.params import param_groups, zero_gamma_init
from backends.torch.schedule import RecipeLR
from harness.errors import NonFiniteError
from harness.recipe import Recipe


class TorchEngine:
    """One Horovod worker running the recipe with PyTorch.

    Args:
        threads: intra-op threads for this rank (``torch.set_num_threads``); ``None`` keeps
            torch's default.
    """

    name = "torch"

    def __init__(self, *, threads: int | None = None, nonfinite: str = "stop"):
        hvd.init()
        self.nonfinite, self.nonfinite_skipped = nonfinite, 0
        if threads:
            torch.set_num_threads(threads)
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.threads = torch.get_num_threads()
        self.model = self.optimizer = self.scheduler = None

    def build(self, recipe: Recipe, *, model: str, input_shape, num_classes: int, seed: int,
              fp16_allreduce: bool = False) -> None:
        """Create the model and the Horovod-wrapped optimizer; rank 0's weights win.

        Raises:
            ValueError: unknown model name.
        """
        torch.manual_seed(seed)
        self.model = build_model(model, input_shape=input_shape, num_classes=num_classes)
        zero_gamma_init(self.model)
        self.recipe = recipe
        groups = param_groups(self.model, weight_decay=recipe.weight_decay)
        if recipe.optimizer == "lars":
            base = LARS(groups, recipe.peak_lr, momentum=recipe.momentum, trust_coefficient=recipe.trust_coefficient,
                        eps=recipe.lars_eps, nesterov=recipe.nesterov, trust_clip=recipe.trust_clip)
        else:
            base = torch.optim.SGD(groups, recipe.peak_lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
        compression = hvd.Compression.fp16 if fp16_allreduce else hvd.Compression.none
        self.optimizer = hvd.DistributedOptimizer(
            base, named_parameters=self.model.named_parameters(), compression=compression, op=hvd.Average,
            backward_passes_per_step=recipe.accumulation_steps)
        hvd.broadcast_parameters(self.model.state_dict(), root_rank=0)
        hvd.broadcast_optimizer_state(self.optimizer, root_rank=0)
        # u-form SGD needs no momentum correction (harness.sgd); LARS is v-form and may use it.
        self.scheduler = RecipeLR(self.optimizer, recipe.schedule(),
                                  momentum_correction=recipe.momentum_correction and recipe.optimizer == "lars")

    @property
    def lr(self) -> float:
        """The LR the next step will use."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
        """One optimizer step over ``accumulation_steps`` micro-batches of n images each.

        The loss is the mean over n, divided by the number of micro-batches; Horovod averages
        over k: the gradient is normalised by kn (Goyal et al. §2.3).

        Returns:
            This rank's mean training loss over its micro-batches.
        """
        self.model.train()
        total = 0.0
        for x, y in micro_batches:
            loss = F.cross_entropy(self.model(torch.from_numpy(x)), torch.from_numpy(y)) / len(micro_batches)
            loss.backward()
            total += loss.detach()
        self.optimizer.synchronize()  # the averaged gradient: identical on every rank
        if not self._gradients_finite():
            self.optimizer.zero_grad()
            self._skip_nonfinite()
            return float(total)
        with self.optimizer.skip_synchronize():
            self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        return float(total)

    def _gradients_finite(self) -> bool:
        """One host sync per step: are all averaged gradients finite?"""
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    def _skip_nonfinite(self) -> None:
        if self.nonfinite == "stop":
            raise NonFiniteError("non-finite gradient: the step was not applied")
        self.nonfinite_skipped += 1

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
        """Summed cross-entropy, number correct and count on this rank's images: float64 (3,)."""
        self.model.eval()
        loss = correct = 0.0
        for start in range(0, len(x), batch_size):
            logits = self.model(torch.from_numpy(x[start:start + batch_size]))
            target = torch.from_numpy(y[start:start + batch_size])
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += float((logits.argmax(1) == target).sum())
        return np.array([loss, correct, len(x)], dtype=np.float64)

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a float64 array over all ranks."""
        return hvd.allreduce(torch.from_numpy(np.asarray(values, dtype=np.float64)), op=hvd.Sum,
                             name="harness.sum").numpy()

    def allgather_object(self, obj) -> list:
        """Every rank's ``obj``, in rank order (pickled)."""
        return hvd.allgather_object(obj, name="harness.gather")

    def broadcast_object(self, obj, root_rank: int = 0):
        """Rank ``root_rank``'s ``obj`` on every rank."""
        return hvd.broadcast_object(obj, root_rank=root_rank, name="harness.bcast")

    def flat_parameters(self) -> np.ndarray:
        """All trainable parameters concatenated, float64 (for equality checks across ranks)."""
        return torch.cat([p.detach().reshape(-1).double() for p in self.model.parameters()]).numpy()

    def horovod_settings(self) -> dict:
        """The Horovod knobs in force on this rank, for records."""
        return {"controller": "gloo" if hvd.gloo_enabled() else "mpi", "nccl_built": bool(hvd.nccl_built())}

    def get_state(self) -> dict:
        """Model, optimizer (momentum/LARS buffers), scheduler step and RNG: a picklable dict."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "nonfinite_skipped": self.nonfinite_skipped}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s dict (after :meth:`build`)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.nonfinite_skipped = int(state["nonfinite_skipped"])

    def shutdown(self) -> None:
        """Release Horovod."""
        hvd.shutdown()
