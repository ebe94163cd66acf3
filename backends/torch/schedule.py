"""A ``torch.optim.lr_scheduler.LRScheduler`` that reads the LR from a numpy-core schedule.

Holds no math: every LR is ``schedule(step)`` in closed form (detectron2's ``LRMultiplier``
pattern), so its only state is the step and a resumed run gets exactly the same LR.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.optim.lr_scheduler import LRScheduler

from harness.sgd import momentum_correction_factor


class RecipeLR(LRScheduler):
    """Set every param group's LR to ``schedule(step)``, with optional momentum correction.

    Call ``step()`` after each ``optimizer.step()``: step t runs at ``schedule(t)``.

    Args:
        optimizer: the wrapped optimizer (Horovod's ``DistributedOptimizer`` is fine).
        schedule: ``f(step) -> lr``, e.g. ``Recipe.schedule()`` (:mod:`harness.schedules`).
        momentum_correction: when the LR changes from γ_t to γ_{t+1}, scale each momentum buffer
            by γ_{t+1}/γ_t (Goyal et al. 2017, eq. 10). Only for v-form optimizers
            (``optimizer.velocity_form``, e.g. :class:`~backends.torch.optim.LARS`); u-form
            ``torch.optim.SGD`` needs none, and asking for it there raises ``ValueError``.
        last_epoch: the step to resume from (-1 to start).

    Raises:
        ValueError: if ``momentum_correction`` is asked of a u-form optimizer.
    """

    def __init__(self, optimizer, schedule: Callable[[int], float], *, momentum_correction: bool = False,
                 last_epoch: int = -1):
        if momentum_correction and not getattr(optimizer, "velocity_form", False):
            raise ValueError(f"momentum correction applies to v-form optimizers (LARS); "
                             f"{type(optimizer).__name__} needs none")
        self.schedule = schedule
        self.momentum_correction = momentum_correction
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The closed-form LR at ``self.last_epoch`` for every group."""
        return [float(self.schedule(max(self.last_epoch, 0)))] * len(self.optimizer.param_groups)

    _get_closed_form_lr = get_lr

    def step(self, epoch=None):
        """Advance one step and set the new LR; rescale velocities if correcting momentum."""
        previous = [group["lr"] for group in self.optimizer.param_groups]
        super().step(epoch)
        if not self.momentum_correction:
            return
        for group, lr_prev in zip(self.optimizer.param_groups, previous):
            factor = momentum_correction_factor(lr_prev, group["lr"])
            if factor == 1.0:
                continue
            for p in group["params"]:
                buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(factor)

    def state_dict(self) -> dict:
        """Only the step (and the correction flag): the schedule itself is rebuilt from the recipe."""
        return {"last_epoch": self.last_epoch, "momentum_correction": self.momentum_correction}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume at the saved step and restore the group LRs to match it."""
        self.last_epoch = int(state_dict["last_epoch"])
        self.momentum_correction = bool(state_dict["momentum_correction"])
        lrs = self._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs
