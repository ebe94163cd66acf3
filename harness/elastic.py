"""The recipe when the world size changes mid-run (elastic training): where the schedule resumes.

Goyal et al. 2017 (arXiv 1706.02677) fix the LR by the global batch: η = η_ref · kn / b_ref (§2.1,
the linear scaling rule; or its square-root variant). When an elastic job goes from k to k' workers
with the per-worker batch n kept, the global batch becomes k'n, so the recipe for k' is a different
recipe: its peak LR, steps per epoch and the step of each milestone all change. What must *not*
change is the position of training measured in epochs (the schedules are defined in epochs:
warmup length, milestones, poly decay). This module maps a position — epoch e and the images of
epoch e already trained on — to the step of the k' recipe at which training resumes:

    s' = (e + 1) · S' − floor((N − consumed) / k'n),        S' = floor(N / k'n)

so the remaining steps of the epoch are exactly the ones the remaining images fill
(:func:`harness.sharding.remaining_indices`) and the next epoch starts at step (e + 1)·S', where the
k' recipe places it. The LR after the change is ``recipe'.lr(s')``; for a v-form optimizer (LARS)
the jump from the old LR to it is a momentum-correction event (Goyal eq. 10), which the optimizer
applies by itself on its next step (:mod:`harness.sgd`).

References:
    Goyal et al. 2017, arXiv 1706.02677, §2.1 and eq. (10). Horovod elastic training
    (``horovodrun --min-np/--max-np --host-discovery-script``, ``hvd.elastic.run``).
"""

from __future__ import annotations

from harness.recipe import Recipe


def resume_step(recipe: Recipe, *, epoch: int, consumed: int) -> int:
    """The step of ``recipe`` (the recipe for the new k) at which an elastic run resumes.

    Args:
        recipe: the recipe resolved for the new world size k' (``recipe.global_batch`` = k'n).
        epoch: the epoch in progress (0-based).
        consumed: images of that epoch's permutation already trained on, 0 <= consumed <= N.

    Returns:
        s' = (epoch + 1) · S' − (N − consumed) // k'n: an int >= epoch · S'.

    Raises:
        ValueError: a negative epoch, or ``consumed`` outside [0, N].

    Example:
        >>> from harness.recipe import Recipe
        >>> r = Recipe(world_size=2, per_worker_batch=32, dataset_size=6400, epochs=4, decay="none", warmup="none")
        >>> resume_step(r, epoch=1, consumed=3200)   # 100 steps an epoch at kn = 64; half of epoch 1 done
        150
    """
    n = recipe.dataset_size
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
    if isinstance(consumed, bool) or not isinstance(consumed, int) or not 0 <= consumed <= n:
        raise ValueError(f"consumed must be an integer in [0, {n}], got {consumed!r}")
    spe = recipe.steps_per_epoch
    return max((epoch + 1) * spe - (n - consumed) // recipe.global_batch, epoch * spe)
