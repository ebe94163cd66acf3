"""Argument checks shared by the reference optimizers (:mod:`harness.sgd`, :mod:`harness.lars`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def per_param_mask(mask: Sequence[bool] | None, n: int, name: str) -> list[bool]:
    if mask is None:
        return [True] * n
    if len(mask) != n:
        raise ValueError(f"{name} has {len(mask)} entries for {n} parameters")
    return [bool(m) for m in mask]


def check_lists(params, grads, velocities) -> None:
    if not (len(params) == len(grads) == len(velocities)):
        raise ValueError(f"params, grads and velocities differ in length: "
                         f"{len(params)}, {len(grads)}, {len(velocities)}")
    for i, (w, g, v) in enumerate(zip(params, grads, velocities)):
        if np.shape(w) != np.shape(g) or np.shape(w) != np.shape(v):
            raise ValueError(f"parameter {i}: shapes differ: w {np.shape(w)}, g {np.shape(g)}, v {np.shape(v)}")


def check_hyper(lr: float, momentum: float, weight_decay: float) -> None:
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
