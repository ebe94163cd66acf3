"""Learning-rate schedules as stateless, vectorised callables ``f(step) -> lr``.

A schedule takes an iteration index ``step`` (an ``int`` or an integer numpy array of any
shape) and returns the LR for that step (a ``float`` or a float64 array of the same shape).
Factories build one piece each; :func:`join` chains pieces at step boundaries, each piece seeing
steps counted from its own start (as optax's ``join_schedules``). All formulas are closed form:
no state, so any step can be evaluated directly (resume, plotting, cross-framework tests).

References:
    Goyal et al. 2017, arXiv 1706.02677, §2.2 (constant and gradual warmup) and §5.1
    (÷10 at epochs 30, 60, 80). You, Gitman & Ginsburg 2017, arXiv 1708.03888, §5
    (polynomial decay, power 2, with warmup). Loshchilov & Hutter 2016, arXiv 1608.03983 (cosine).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Schedule = Callable[[object], object]


def _as_steps(step) -> np.ndarray:
    steps = np.asarray(step)
    if steps.dtype.kind not in "iu" and not (steps.dtype.kind == "f" and np.all(steps == np.floor(steps))):
        raise ValueError(f"step must be an integer or an array of integers, got {step!r}")
    if np.any(steps < 0):
        raise ValueError(f"step must be >= 0, got {step!r}")
    return steps.astype(np.float64)


def _vectorised(formula: Callable[[np.ndarray], np.ndarray]) -> Schedule:
    """Wrap ``formula(float64 steps) -> float64 lrs`` to accept an int or an array."""

    def schedule(step):
        steps = _as_steps(step)
        lrs = np.broadcast_to(formula(steps), steps.shape).astype(np.float64)
        return float(lrs) if lrs.ndim == 0 else lrs

    return schedule


def _check_lr(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_steps(name: str, value: int, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def constant(lr: float) -> Schedule:
    """``f(t) = lr`` for every step.

    Raises:
        ValueError: if ``lr`` is negative or not finite.
    """
    lr = _check_lr("lr", lr)
    return _vectorised(lambda t: np.full_like(t, lr))


def linear_warmup(start_lr: float, peak_lr: float, warmup_steps: int) -> Schedule:
    """Gradual warmup: linear from ``start_lr`` at step 0 to ``peak_lr`` at ``warmup_steps``.

    .. math:: f(t) = \\eta_0 + (\\eta_{peak} - \\eta_0) \\cdot \\min(t / T, 1)

    Goyal et al. §2.2: start at η and add a constant amount each iteration so that the LR reaches
    kη after 5 epochs; the increase is per iteration, not per epoch. Steps past ``warmup_steps``
    hold ``peak_lr``.

    Raises:
        ValueError: if an LR is negative or not finite, or ``warmup_steps < 1``.
    """
    start_lr, peak_lr = _check_lr("start_lr", start_lr), _check_lr("peak_lr", peak_lr)
    steps = _check_steps("warmup_steps", warmup_steps)
    return _vectorised(lambda t: start_lr + (peak_lr - start_lr) * np.minimum(t / steps, 1.0))


def multistep(base_lr: float, milestones: Sequence[int], factor: float = 0.1) -> Schedule:
    """Step decay: multiply by ``factor`` at each milestone.

    .. math:: f(t) = \\eta \\cdot \\text{factor}^{|\\{m \\in M : m \\le t\\}|}

    Goyal et al. §5.1: ÷10 (factor 0.1) at epochs 30, 60 and 80 of 90.

    Raises:
        ValueError: if milestones are not strictly increasing integers >= 1, or ``factor`` is
            not in (0, 1].
    """
    base_lr = _check_lr("base_lr", base_lr)
    marks = [_check_steps("milestone", m) for m in milestones]
    if any(b <= a for a, b in zip(marks, marks[1:])):
        raise ValueError(f"milestones must be strictly increasing, got {list(milestones)!r}")
    if not (isinstance(factor, (int, float)) and 0 < factor <= 1):
        raise ValueError(f"factor must be in (0, 1], got {factor!r}")
    edges = np.asarray(marks, dtype=np.float64)
    return _vectorised(lambda t: base_lr * factor ** np.searchsorted(edges, t, side="right"))


def polynomial(base_lr: float, decay_steps: int, *, power: float = 2.0, end_lr: float = 0.0) -> Schedule:
    """Polynomial decay from ``base_lr`` to ``end_lr`` over ``decay_steps``.

    .. math:: f(t) = (\\eta - \\eta_{end}) (1 - \\min(t, T)/T)^{p} + \\eta_{end}

    You et al. 2017 (LARS) §5 use p = 2 ("poly(2)").

    Raises:
        ValueError: if an LR is invalid, ``decay_steps < 1`` or ``power <= 0``.
    """
    base_lr, end_lr = _check_lr("base_lr", base_lr), _check_lr("end_lr", end_lr)
    steps = _check_steps("decay_steps", decay_steps)
    if not (isinstance(power, (int, float)) and power > 0):
        raise ValueError(f"power must be > 0, got {power!r}")
    return _vectorised(lambda t: (base_lr - end_lr) * (1.0 - np.minimum(t, steps) / steps) ** power + end_lr)


def cosine(base_lr: float, decay_steps: int, *, end_lr: float = 0.0) -> Schedule:
    """Cosine decay from ``base_lr`` to ``end_lr`` over ``decay_steps`` (SGDR without restarts).

    .. math:: f(t) = \\eta_{end} + \\tfrac12 (\\eta - \\eta_{end}) (1 + \\cos(\\pi \\min(t, T) / T))

    Raises:
        ValueError: if an LR is invalid or ``decay_steps < 1``.
    """
    base_lr, end_lr = _check_lr("base_lr", base_lr), _check_lr("end_lr", end_lr)
    steps = _check_steps("decay_steps", decay_steps)
    return _vectorised(lambda t: end_lr + 0.5 * (base_lr - end_lr) * (1 + np.cos(np.pi * np.minimum(t, steps) / steps)))


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Chain schedules: piece i runs on ``[boundaries[i-1], boundaries[i])``.

    Each piece sees steps counted from its own start (``t - boundaries[i-1]``), so a warmup of
    W steps followed by a decay is ``join([warmup, decay], [W])``.

    Args:
        schedules: n schedules.
        boundaries: n - 1 strictly increasing step indices >= 1.

    Raises:
        ValueError: if ``len(boundaries) != len(schedules) - 1`` or boundaries do not increase.
    """
    if len(schedules) == 0 or len(boundaries) != len(schedules) - 1:
        raise ValueError(f"join needs n schedules and n-1 boundaries, got {len(schedules)} and {len(boundaries)}")
    marks = [_check_steps("boundary", b) for b in boundaries]
    if any(b <= a for a, b in zip(marks, marks[1:])):
        raise ValueError(f"boundaries must be strictly increasing, got {list(boundaries)!r}")
    starts = np.asarray([0, *marks], dtype=np.int64)

    def formula(t: np.ndarray) -> np.ndarray:
        piece = np.searchsorted(starts, t, side="right") - 1
        out = np.empty_like(t)
        for i, schedule in enumerate(schedules):
            sel = piece == i
            if np.any(sel):
                out[sel] = schedule((t[sel] - starts[i]).astype(np.int64))
        return out

    return _vectorised(formula)


def steps_per_epoch(dataset_size: int, global_batch: int, *, drop_last: bool = True) -> int:
    """Optimizer steps in one epoch: ``dataset_size // kn`` (``ceil`` without ``drop_last``).

    Raises:
        ValueError: if a size is not a positive integer, or an epoch has no full step.
    """
    dataset_size = _check_steps("dataset_size", dataset_size)
    global_batch = _check_steps("global_batch", global_batch)
    steps = dataset_size // global_batch if drop_last else -(-dataset_size // global_batch)
    if steps < 1:
        raise ValueError(f"dataset_size {dataset_size} holds no full global batch of {global_batch}")
    return steps


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    """Convert a (possibly fractional) number of epochs to whole steps, rounding to nearest.

    Raises:
        ValueError: if ``epochs`` is negative or not finite.
    """
    if not (isinstance(epochs, (int, float)) and math.isfinite(epochs) and epochs >= 0):
        raise ValueError(f"epochs must be a finite number >= 0, got {epochs!r}")
    return int(round(epochs * _check_steps("steps_per_epoch", steps_per_epoch)))
