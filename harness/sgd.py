"""Reference momentum SGD in the two forms Goyal et al. compare, and momentum correction.

Two forms of momentum SGD with weight decay β and learning rate γ_t:

* **u-form** (PyTorch ``torch.optim.SGD``, Goyal eq. 9):
  ``u ← m·u + (g + β·w);  w ← w − γ_{t+1}·u``. The LR multiplies the update, so a changing
  γ needs no correction.
* **v-form** (Caffe2, LARS Algorithm 1, Goyal eq. 10 without the factor):
  ``v ← m·v + γ_{t+1}·(g + β·w);  w ← w − v``. Velocity carries past LRs, so when γ changes
  the two forms diverge unless the velocity is rescaled: **momentum correction**
  (Goyal eq. 10) ``v ← m·(γ_{t+1}/γ_t)·v + γ_{t+1}·(g + β·w)``, i.e. scale v by γ_{t+1}/γ_t
  before the step. With it, ``v_t = γ_t·u_t`` at every step and the trajectories are equal.

All functions take lists of numpy arrays (one per parameter) and return new lists; inputs are
never modified.

References:
    Goyal et al. 2017, arXiv 1706.02677, §2.3 (eqs. 9 and 10), Nesterov: Sutskever et al. 2013.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness._validate import check_hyper, check_lists, per_param_mask

FORMS = ("u", "v")


def sgd_step(params, grads, velocities, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
             nesterov: bool = False, form: str = "u", decay_mask: Sequence[bool] | None = None):
    """One step of momentum SGD with optional weight decay and Nesterov momentum.

    u-form: ``u ← m·u + d;  w ← w − γ·(d + m·u if nesterov else u)``;
    v-form: ``v ← m·v + γ·d;  w ← w − (m·v + γ·d if nesterov else v)``; with ``d = g + β·w``.

    Args:
        params, grads, velocities: lists of arrays, one per parameter, each the parameter's shape.
            ``velocities`` holds u (u-form) or v (v-form); zeros at the first step.
        lr: γ_{t+1}, this step's learning rate.
        momentum: m in [0, 1).
        weight_decay: β >= 0, L2 coefficient added to the gradient.
        nesterov: use Nesterov momentum.
        form: ``"u"`` or ``"v"`` (see the module docstring).
        decay_mask: per-parameter booleans; ``False`` means no weight decay for that parameter.

    Returns:
        ``(new_params, new_velocities)``, lists of float arrays.

    Raises:
        ValueError: on mismatched lengths or shapes, an unknown form, or out-of-range values.
    """
    check_lists(params, grads, velocities)
    check_hyper(lr, momentum, weight_decay)
    if form not in FORMS:
        raise ValueError(f"form must be 'u' or 'v', got {form!r}")
    decays = per_param_mask(decay_mask, len(params), "decay_mask")
    new_params, new_velocities = [], []
    for w, g, v, decay in zip(params, grads, velocities, decays):
        w, g, v = np.asarray(w), np.asarray(g), np.asarray(v)
        d = g + weight_decay * w if decay else g
        scale = 1.0 if form == "u" else lr
        v = momentum * v + scale * d
        step = momentum * v + scale * d if nesterov else v
        new_params.append(w - (lr * step if form == "u" else step))
        new_velocities.append(v)
    return new_params, new_velocities


def momentum_correction_factor(lr_prev: float, lr_next: float) -> float:
    """Goyal eq. 10's velocity factor γ_{t+1}/γ_t for the v-form; 1.0 when γ_t is 0.

    A zero γ_t only happens before any update has entered v (the v-form velocity is a sum of
    γ-weighted terms), so no rescaling is needed then.

    Raises:
        ValueError: if an LR is negative or not finite.
    """
    for name, value in (("lr_prev", lr_prev), ("lr_next", lr_next)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return 1.0 if lr_prev == 0 else lr_next / lr_prev


def momentum_correction(velocities, *, lr_prev: float, lr_next: float) -> list[np.ndarray]:
    """Rescale v-form velocities by γ_{t+1}/γ_t before a step at the new LR (Goyal eq. 10).

    The u-form (PyTorch SGD) does not need this: apply it only to v-form optimizers (LARS).

    Args:
        velocities: list of arrays, the v-form velocity of each parameter.
        lr_prev: γ_t, the LR of the previous step.
        lr_next: γ_{t+1}, the LR of the step about to run.

    Returns:
        A new list of arrays.

    Raises:
        ValueError: if an LR is negative or not finite.
    """
    factor = momentum_correction_factor(lr_prev, lr_next)
    return [np.asarray(v) * factor for v in velocities]
