"""PyTorch + ``horovod.torch`` engine behind ``harness train --backend torch``.

The training loop (:mod:`harness.runtime.loop`) is framework-free; an engine implements
:class:`harness.runtime.engine.Engine`: the model, the optimizer wired into Horovod's ring-allreduce,
one training step and evaluation here; init, collectives and the non-finite policy in the shared
:class:`backends.base.HorovodEngine`. Horovod wiring follows its documented PyTorch usage:
``hvd.DistributedOptimizer`` (named parameters, average over k workers,
``backward_passes_per_step`` for gradient accumulation, optional fp16 compression), then
broadcast of parameters and optimizer state from rank 0. On CUDA each rank uses GPU
``local_rank`` (:mod:`backends.torch.device`); with fp16 the ``GradScaler`` is wired in the order
Horovod's AMP guide gives: ``synchronize()``, ``unscale_``, ``step`` under ``skip_synchronize()``.
"""

from __future__ import annotations

import horovod.torch as hvd
import numpy as np
import torch
import torch.nn.functional as F

from backends.base import HorovodEngine, PreparedBatch
from backends.torch.device import (
    autocast,
    check_precision,
    device_info,
    images_to_device,
    resolve_device,
    to_cpu,
    to_device,
)
from backends.torch.models import build_model
from backends.torch.optim import LARS, DistributedOptimizer, MomentumSGD, broadcast_initial_state
from backends.torch.params import param_groups, zero_gamma_init
from backends.torch.schedule import RecipeLR
from harness.recipe import Recipe
from harness.runtime.models import UserModel


class TorchEngine(HorovodEngine):
    """One Horovod worker running the recipe with PyTorch.

    Args:
        threads: intra-op threads for this rank (``torch.set_num_threads``); ``None`` keeps
            torch's default.
        nonfinite: ``"stop"`` or ``"skip"`` (:class:`backends.base.HorovodEngine`).
        device: ``"auto"`` (GPU ``local_rank`` when CUDA is available), ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast + ``GradScaler``, CUDA).
        channels_last: feed 4-D inputs in ``torch.channels_last`` memory format, so convolutions run
            channels-last; parameters stay contiguous, as Horovod's collectives require.

    Raises:
        ConfigError: no GPU for this local rank, or fp16 on a CPU (:mod:`backends.torch.device`).
    """

    name = "torch"

    def __init__(self, *, threads: int | None = None, nonfinite: str = "stop", device: str = "auto",
                 precision: str = "fp32", channels_last: bool = False):
        if threads:
            torch.set_num_threads(threads)
        super().__init__(hvd, threads=torch.get_num_threads(), nonfinite=nonfinite)
        self.device = resolve_device(device, self.local_rank)  # set_device before anything is built
        check_precision(precision, self.device)
        self.precision, self.channels_last = precision, channels_last
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        if self.device.type == "cuda":
            # Fixed-shape training: let cuDNN time its convolution algorithms once and keep the fastest
            # (Horovod's and NVIDIA's ResNet benchmarks do the same); recorded in device_info().
            torch.backends.cudnn.benchmark = True
        self._copy_stream = None  # CUDA: host→device copies of the next step's batch
        self.model = self.optimizer = self.scheduler = self._normalization = None

    def _tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values)

    def synchronize(self) -> None:
        """Wait for this rank's queued CUDA work (a timing boundary for benchmarks)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def device_info(self) -> dict:
        """This rank's device, precision and memory format, for records."""
        return {**device_info(self.device), "precision": self.precision, "channels_last": self.channels_last}

    def build(self, recipe: Recipe, *, model: str | UserModel, input_shape, num_classes: int, seed: int,
              fp16_allreduce: bool = False, broadcast: bool = True, input_normalization=None) -> None:
        """Create the model and the Horovod-wrapped optimizer; rank 0's weights win.

        ``broadcast=False`` leaves the broadcast to an elastic run's first ``sync`` (a worker that
        joins a running elastic job must make no collective call before it). ``input_normalization``:
        (mean, std) per channel for uint8 NHWC images, applied on the device
        (:class:`harness.runtime.engine.Engine`).

        Raises:
            ValueError: unknown model name, or a user's builder that raised or returned no ``nn.Module``.
        """
        torch.manual_seed(seed)
        if input_normalization is not None:
            self._normalization = tuple(torch.tensor(v, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
                                        for v in input_normalization)
        self.model = (build_model(model, input_shape=input_shape, num_classes=num_classes) if isinstance(model, str)
                      else model.build(tuple(input_shape), num_classes, torch.nn.Module))
        zero_gamma_init(self.model)
        # Weights keep the default layout even with channels_last: Horovod's allreduce and broadcast
        # require contiguous tensors, and a gradient takes its parameter's layout. Convolutions still run
        # channels-last, since their output follows a channels-last input (prepare() makes it so).
        self.model.to(self.device)
        self.recipe = recipe
        groups = param_groups(self.model, weight_decay=recipe.weight_decay)
        if recipe.optimizer == "lars":
            base = LARS(groups, recipe.peak_lr, momentum=recipe.momentum, trust_coefficient=recipe.trust_coefficient,
                        eps=recipe.lars_eps, nesterov=recipe.nesterov, trust_clip=recipe.trust_clip,
                        momentum_correction=recipe.momentum_correction)
        else:  # u-form SGD needs no momentum correction (harness.sgd)
            base = MomentumSGD(groups, recipe.peak_lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
        self.optimizer = DistributedOptimizer(base, named_parameters=self.model.named_parameters(),
                                              compression="fp16" if fp16_allreduce else "none",
                                              backward_passes_per_step=recipe.accumulation_steps)
        if broadcast:
            broadcast_initial_state(self.model, self.optimizer)
        self.scheduler = RecipeLR(self.optimizer, recipe)  # peak_lr × recipe.multiplier(step) = recipe.lr(step)
        self._group_scale = [group["initial_lr"] / recipe.peak_lr for group in self.optimizer.param_groups]

    def rescale(self, recipe: Recipe, step: int) -> None:
        """Continue with ``recipe`` (the recipe for a new k) from its step ``step`` (elastic training).

        Each group's base LR becomes its share of the new peak LR (``recipe.peak_lr`` × the group's
        ratio at build) and the scheduler moves to ``step``, so the next step runs at
        ``recipe.lr(step)`` (:func:`harness.elastic.resume_step`). Momentum correction for the LR
        jump is LARS's own (it rescales its velocity on the next step, Goyal eq. 10).
        """
        base = [scale * recipe.peak_lr for scale in self._group_scale]
        for group, lr in zip(self.optimizer.param_groups, base):
            group["initial_lr"] = lr
        self.recipe, self.scheduler.base_lrs, self.scheduler.multiplier = recipe, base, recipe.multiplier
        self.scheduler.load_state_dict({"last_epoch": step})

    @property
    def lr(self) -> float:
        """The LR the next step will use."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _images(self, x: np.ndarray) -> torch.Tensor:
        """A batch's images on the device: float32 NCHW as they are; uint8 NHWC normalised there."""
        if x.dtype == np.uint8:
            if self._normalization is None:
                raise ValueError("uint8 images need build(input_normalization=(mean, std))")
            return images_to_device(x, self.device, self._normalization, channels_last=self.channels_last)
        return to_device(x, self.device, channels_last=self.channels_last)

    def prepare(self, micro_batches: list[tuple[np.ndarray, np.ndarray]]) -> PreparedBatch:
        """Start copying a step's micro-batches to this rank's device (pinned, non-blocking on CUDA).

        Called for the next step while the current one runs, so the copy overlaps compute: on CUDA the
        copies, and the normalisation of uint8 images, go on a stream of their own, and the step waits
        for its event (:meth:`train_step`).
        """
        def copies():
            return PreparedBatch((self._images(x), to_device(y, self.device)) for x, y in micro_batches)

        if self.device.type != "cuda":
            return copies()
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self._copy_stream):
            batch = copies()
            batch.ready = self._copy_stream.record_event()
        return batch

    def _wait_for(self, batch: PreparedBatch) -> None:
        """Make the compute stream wait for ``batch``'s copies, and keep their memory until it is done."""
        if batch.ready is None:
            return
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(batch.ready)
        for pair in batch:
            for tensor in pair:
                tensor.record_stream(compute)
        batch.ready = None

    def train_step(self, micro_batches) -> torch.Tensor:
        """One optimizer step over ``accumulation_steps`` micro-batches of n images each.

        The averaged gradient's finiteness is read on the host before the update (one sync per step):
        a non-finite step is never applied. With fp16 the ``GradScaler`` runs in Horovod's AMP order
        (``synchronize()``, ``unscale_``, ``step`` under ``skip_synchronize()``) and an overflow skips
        the step, bounded under ``stop`` (:meth:`backends.base.HorovodEngine.loss_scale_overflow`).

        The loss is the mean over n, divided by the number of micro-batches; Horovod averages
        over k: the gradient is normalised by kn (Goyal et al. §2.3). With ``recipe.label_smoothing``
        = ε the targets are (1 − ε)·one-hot + ε/C (:func:`harness.losses.cross_entropy`, the MLPerf
        reference's loss); evaluation stays plain cross-entropy.

        Args:
            micro_batches: numpy (x, y) pairs, or what :meth:`prepare` returned for them.

        Returns:
            This rank's mean training loss over its micro-batches, a 0-d tensor on the device: read
            it (a host sync) only when it is logged.
        """
        if not isinstance(micro_batches, PreparedBatch):
            micro_batches = self.prepare(micro_batches)
        self._wait_for(micro_batches)
        if not self.model.training:  # train() walks every module: 3% of a small model's step; evaluate() unsets it
            self.model.train()
        total = None
        for x, y in micro_batches:
            with autocast(self.device, self.precision):
                loss = F.cross_entropy(self.model(x), y, label_smoothing=self.recipe.label_smoothing)
                if len(micro_batches) > 1:
                    loss = loss / len(micro_batches)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            total = loss.detach() if total is None else total + loss.detach()
        self.optimizer.synchronize()  # the averaged gradient: identical on every rank
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if not self._gradients_finite():  # decided before the update: weights never see NaN or Inf
            self.optimizer.zero_grad()
            if self.scaler:  # an fp16 overflow: the scaler lowers its scale, the step is skipped
                scale = float(self.scaler.get_scale())
                self.scaler.update()
                self.loss_scale_overflow(scale)
            else:
                self.nonfinite_step()
            return total
        if self.scaler:
            self.loss_scale_finite()
        with self.optimizer.skip_synchronize():
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        return total

    def _finite(self) -> torch.Tensor:
        """One fused reduction, on the device: are all averaged gradients finite? (a 0-d bool tensor)

        Every rank holds the same averaged gradient, so every rank reaches the same verdict. A NaN or
        Inf anywhere makes its tensor's norm non-finite.
        """
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        return torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()

    def _gradients_finite(self) -> bool:
        """:meth:`_finite` read on the host: the step's one device→host sync, before the update.

        Horovod's ``synchronize()`` already waits for the allreduce every step, so this read adds one
        small copy; deciding later (at the next loss read-out) would let a NaN update through.
        """
        return bool(self._finite())

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
        """Summed cross-entropy, number correct and count on this rank's images: float64 (3,)."""
        self.model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)
        for start in range(0, len(x), batch_size):
            images = self._images(x[start:start + batch_size])
            target = to_device(y[start:start + batch_size], self.device)
            with autocast(self.device, self.precision):
                logits = self.model(images).float()
            totals += torch.stack([F.cross_entropy(logits, target, reduction="sum").double(),
                                   (logits.argmax(1) == target).sum().double()])
        return np.array([*totals.cpu().tolist(), len(x)], dtype=np.float64)

    def flat_parameters(self) -> np.ndarray:
        """All trainable parameters concatenated, float64 (for equality checks across ranks)."""
        return torch.cat([p.detach().reshape(-1).double().cpu() for p in self.model.parameters()]).numpy()

    def get_state(self) -> dict:
        """Model, optimizer (momentum/LARS buffers), scheduler step, loss scale and RNG, on the CPU: a
        picklable dict that a CPU or GPU run can load."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "nonfinite_skipped": self.nonfinite_skipped}
        if self.scaler:
            state["scaler"] = self.scaler.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return to_cpu(state)

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s dict (after :meth:`build`)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if self.scaler and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.nonfinite_skipped = int(state["nonfinite_skipped"])

