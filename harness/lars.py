"""LARS: layer-wise adaptive rate scaling, the reference implementation (numpy, float64-exact).

Per layer (parameter tensor) l, with global LR γ, trust coefficient η, weight decay β:

.. math::
    \\lambda^l = \\frac{\\eta \\lVert w^l \\rVert}{\\lVert \\nabla L(w^l) \\rVert + \\beta \\lVert w^l \\rVert + \\epsilon}

    v^l \\leftarrow m v^l + \\gamma \\lambda^l (\\nabla L(w^l) + \\beta w^l), \\qquad w^l \\leftarrow w^l - v^l

This is Algorithm 1 of You, Gitman & Ginsburg in the v-form (the LR lives inside the velocity),
so a changing γ calls for momentum correction (:func:`harness.sgd.momentum_correction`).

Guards and options:

* λ = 1 when ‖w‖ = 0 or ‖g‖ = 0: zero-initialised biases and BN γ must still train
  (as optax's ``scale_by_trust_ratio``). No NaN or Inf for zero or tiny norms.
* ``trust_clip`` (LARC, NVIDIA apex): the per-layer LR is min(γ·λ, γ), i.e. λ is clipped at 1.
* Parameters outside ``adapt_mask`` take plain momentum SGD (λ = 1); outside ``decay_mask``
  take no weight decay (and their trust ratio uses β = 0).
* The MLPerf ResNet-50 reference (mlcommons/training ``image_classification/tensorflow2/
  lars_optimizer.py``) is this update with ε = :func:`reference_epsilon` of its configured value
  (0 → Keras's 1e-7) and its skip list (BN and bias variables) as both masks.

References:
    You, Gitman & Ginsburg 2017, arXiv 1708.03888, Algorithm 1 and eq. (6).
    Goyal et al. 2017, arXiv 1706.02677, eq. 10 (momentum correction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness._validate import check_hyper, check_lists, per_param_mask

KERAS_EPSILON = 1e-7
"""``tf.keras.backend.epsilon()``: the ε the MLPerf reference's LARS uses when configured with 0."""


def bias_and_norm(name: str, shape: tuple[int, ...]) -> bool:
    """The default exclusion rule: biases and normalisation parameters (γ, β), i.e. ndim <= 1.

    Excluded parameters are outside both masks of :func:`lars_step` (``adapt_mask``, ``decay_mask``):
    no trust ratio, no weight decay. The backends' optimizers take it as their ``exclude`` rule
    (``backends.torch.bias_and_norm`` and ``backends.keras.bias_and_norm`` are this function).

    Args:
        name: the parameter's name or path; unused by this rule.
        shape: the parameter's shape.

    Example::

        >>> bias_and_norm("fc.bias", (10,)), bias_and_norm("fc.weight", (10, 64))
        (True, False)
    """
    return len(shape) <= 1


def reference_epsilon(eps: float = 0.0) -> float:
    """The ε the MLPerf reference's LARS actually adds: ``eps or 1e-7``.

    ``LARSOptimizer.__init__`` sets ``self.epsilon = epsilon or backend_config.epsilon()``, so the
    ``--lars_epsilon=0`` of its documented runs means ε = 1e-7, not 0 (mlcommons/training
    ``image_classification/tensorflow2/lars_optimizer.py``).

    Raises:
        ValueError: if ``eps`` is negative or not finite.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps) or KERAS_EPSILON


def trust_ratio(param_norm, grad_norm, *, trust_coefficient: float, weight_decay: float = 0.0,
                eps: float = 0.0):
    """The LARS local LR factor λ = η‖w‖ / (‖g‖ + β‖w‖ + ε), with λ = 1 for a zero norm.

    Args:
        param_norm: ‖w‖ >= 0, a float or an array (one norm per layer).
        grad_norm: ‖g‖ >= 0, same shape as ``param_norm``.
        trust_coefficient: η > 0 (You et al.: 0.001).
        weight_decay: β >= 0.
        eps: ε >= 0, added to the denominator.

    Returns:
        λ, a float (scalar inputs) or a float64 array of the inputs' shape. Finite for finite
        inputs; 1 where either norm is 0.

    Raises:
        ValueError: if a norm is negative or a coefficient is out of range.
    """
    if not (math.isfinite(trust_coefficient) and trust_coefficient > 0):
        raise ValueError(f"trust_coefficient must be a finite number > 0, got {trust_coefficient!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    w = np.asarray(param_norm, dtype=np.float64)
    g = np.asarray(grad_norm, dtype=np.float64)
    if np.any(w < 0) or np.any(g < 0):
        raise ValueError(f"norms must be >= 0, got param_norm={param_norm!r}, grad_norm={grad_norm!r}")
    active = (w > 0) & (g > 0)
    denominator = np.where(active, g + weight_decay * w + eps, 1.0)
    ratio = np.where(active, trust_coefficient * w / denominator, 1.0)
    return float(ratio) if ratio.ndim == 0 else ratio


def layer_lr(lr: float, ratio, *, trust_clip: bool = False):
    """The per-layer learning rate γ·λ, or LARC's min(γ·λ, γ) with ``trust_clip``."""
    return lr * (np.minimum(ratio, 1.0) if trust_clip else ratio)


def lars_step(params, grads, velocities, *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
              trust_coefficient: float = 0.001, eps: float = 0.0, nesterov: bool = False,
              trust_clip: bool = False, adapt_mask: Sequence[bool] | None = None,
              decay_mask: Sequence[bool] | None = None):
    """One LARS step (You et al. Algorithm 1, v-form) over a list of layers.

    For each layer: ``d = g + β·w``; ``v ← m·v + γ·λ·d``;
    ``w ← w − v`` (or ``w ← w − (m·v + γ·λ·d)`` with Nesterov).

    Args:
        params, grads, velocities: lists of arrays, one per layer, each that layer's shape.
            Velocities start at zero.
        lr: γ, the global learning rate of this step.
        momentum: m in [0, 1).
        weight_decay: β >= 0.
        trust_coefficient: η > 0 (You et al.: 0.001).
        eps: ε >= 0 in the trust-ratio denominator.
        nesterov: Nesterov momentum in the v-form.
        trust_clip: LARC clipping, per-layer LR = min(γ·λ, γ).
        adapt_mask: per-layer booleans; ``False`` → λ = 1 (plain momentum SGD).
        decay_mask: per-layer booleans; ``False`` → β = 0 for that layer.

    Returns:
        ``(new_params, new_velocities)``: lists of float arrays; inputs are not modified.

    Raises:
        ValueError: on mismatched lengths or shapes, or out-of-range hyperparameters.
    """
    check_lists(params, grads, velocities)
    check_hyper(lr, momentum, weight_decay)
    adapts = per_param_mask(adapt_mask, len(params), "adapt_mask")
    decays = per_param_mask(decay_mask, len(params), "decay_mask")
    new_params, new_velocities = [], []
    for w, g, v, adapt, decay in zip(params, grads, velocities, adapts, decays):
        w, g, v = np.asarray(w), np.asarray(g), np.asarray(v)
        beta = weight_decay if decay else 0.0
        ratio = 1.0
        if adapt:
            ratio = trust_ratio(np.linalg.norm(w), np.linalg.norm(g), trust_coefficient=trust_coefficient,
                                weight_decay=beta, eps=eps)
        local_lr = layer_lr(lr, ratio, trust_clip=trust_clip and adapt)
        d = g + beta * w
        v = momentum * v + local_lr * d
        new_params.append(w - (momentum * v + local_lr * d if nesterov else v))
        new_velocities.append(v)
    return new_params, new_velocities
