"""A ``torch.optim.lr_scheduler.LRScheduler`` that multiplies each group's base LR by the recipe's.

detectron2's ``LRMultiplier`` pattern: every LR is ``base_lr × multiplier(step)`` in closed form, so
per-group LRs keep their ratios, the only state is the step, and a resumed run gets exactly the same
LRs. Momentum correction is the optimizer's job (:class:`backends.torch.optim.LARS`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch.optim.lr_scheduler import LRScheduler

from harness.recipe import Recipe


class RecipeLR(LRScheduler):
    """Set each param group's LR to ``base_lr × recipe.lr(step) / recipe.peak_lr``.

    ``base_lr`` is the group's LR when the scheduler is created (torch records it as
    ``initial_lr``). With the optimizer's LR at ``recipe.peak_lr`` the LR is ``recipe.lr(step)``,
    as ``backends.keras.RecipeLR`` gives; a group at a tenth of it stays at a tenth all along.
    Call ``step()`` after each ``optimizer.step()``: step t runs at multiplier(t).

    Args:
        optimizer: the wrapped optimizer (Horovod's ``DistributedOptimizer`` is fine).
        recipe: a :class:`~harness.recipe.Recipe` (its :meth:`~harness.recipe.Recipe.multiplier`),
            or a callable ``multiplier(step) -> float``.
        last_epoch: the step to resume from (-1 to start).

    Raises:
        ValueError: if ``recipe`` is neither a ``Recipe`` nor callable.
    """

    def __init__(self, optimizer, recipe: Recipe | Callable[[int], float], *, last_epoch: int = -1):
        if not (isinstance(recipe, Recipe) or callable(recipe)):
            raise ValueError(f"recipe must be a Recipe or a callable multiplier(step), got {recipe!r}")
        self.multiplier = recipe.multiplier if isinstance(recipe, Recipe) else recipe
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """``base_lr × multiplier(step)`` for every group, at ``self.last_epoch``."""
        factor = float(self.multiplier(max(self.last_epoch, 0)))
        return [base_lr * factor for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr

    def state_dict(self) -> dict:
        """Only the step: the multiplier is rebuilt from the recipe, the base LRs live in the groups."""
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume at the saved step and restore the group LRs to match it."""
        self.last_epoch = int(state_dict["last_epoch"])
        lrs = self._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs
