"""Keras 3 optimizers porting the numpy core: momentum SGD (u-form) and LARS (v-form).

Keras's own ``SGD`` keeps the LR inside the velocity and applies *decoupled* weight decay, so it
cannot equal PyTorch's SGD; :class:`MomentumSGD` ports :func:`harness.sgd.sgd_step` (u-form, L2
weight decay coupled into the gradient) and :class:`LARS` ports :func:`harness.lars.lars_step`.

Exclusion of biases and norm parameters: ``exclude(path, shape) -> bool`` (default
:func:`bias_and_norm`: ndim <= 1) picks the variables that get no weight decay and, in LARS, no trust
ratio; the torch backend's ``param_groups`` takes the same ``exclude`` rule.

References:
    You, Gitman & Ginsburg 2017, arXiv 1708.03888 (Algorithm 1). Goyal et al. 2017,
    arXiv 1706.02677 (eqs. 9-10: u-form, v-form and momentum correction).
"""

from __future__ import annotations

import math

import keras
from keras import ops

import harness.lars


def _check(name: str, value, ok: bool) -> None:
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r}")


# The core's rule (harness.lars.bias_and_norm), registered so that optimizer configs naming it deserialize.
bias_and_norm = keras.saving.register_keras_serializable(package="harness")(harness.lars.bias_and_norm)


class _RecipeOptimizer(keras.optimizers.Optimizer):
    """Shared pieces: momentum slots, coupled L2 weight decay, exclusion, config."""

    def __init__(self, learning_rate, *, momentum: float, weight_decay: float, nesterov: bool, exclude, name: str,
                 **kwargs):
        _check("momentum", momentum, isinstance(momentum, (int, float)) and 0 <= momentum < 1)
        _check("weight_decay", weight_decay, isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay)
               and weight_decay >= 0)
        if isinstance(exclude, (dict, str)):  # from get_config
            exclude = keras.saving.deserialize_keras_object(exclude)
        _check("exclude", exclude, exclude is None or callable(exclude))
        # weight_decay=None: Keras's base would apply decoupled decay; ours is coupled (L2).
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        self.momentum, self.l2, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)
        self.exclude = exclude

    def build(self, variables):
        """Create one momentum buffer per variable (zeros)."""
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _excluded(self, variable) -> bool:
        """``exclude(path, shape)`` of the Keras variable behind ``variable`` (``update_step`` may get
        the backend's variable, which has no path)."""
        if self.exclude is None:
            return False
        tracked = self._trainable_variables[self._get_variable_index(variable)]
        return bool(self.exclude(tracked.path, tuple(tracked.shape)))

    def _decayed_gradient(self, gradient, variable):
        beta = 0.0 if self._excluded(variable) else self.l2
        return (gradient + beta * variable if beta else gradient), beta

    def get_config(self) -> dict:
        """Keras config, including the recipe hyperparameters."""
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update(momentum=self.momentum, weight_decay=self.l2, nesterov=self.nesterov,
                      exclude=keras.saving.serialize_keras_object(self.exclude))
        return config


class MomentumSGD(_RecipeOptimizer):
    """Momentum SGD in the u-form of ``torch.optim.SGD`` (:func:`harness.sgd.sgd_step`).

    ``u ← m·u + (g + β·w)``; ``w ← w − γ·u`` (Nesterov: ``w ← w − γ·(g + β·w + m·u)``).
    The LR multiplies the update, so a changing γ needs no momentum correction.

    Args:
        learning_rate: γ: a float or a ``LearningRateSchedule`` (e.g.
            :class:`backends.keras.schedule.RecipeLR`).
        momentum: m in [0, 1).
        weight_decay: β >= 0, coupled L2 (added to the gradient).
        nesterov: Nesterov momentum.
        momentum_correction: must be False: the u-form needs none.
        exclude: ``exclude(path, shape) -> bool``: variables that get no weight decay (default
            :func:`bias_and_norm`; ``None`` excludes nothing).

    Raises:
        ValueError: on an out-of-range hyperparameter, or ``momentum_correction=True``.
    """

    def __init__(self, learning_rate=0.1, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, momentum_correction: bool = False, exclude=bias_and_norm,
                 name: str = "momentum_sgd", **kwargs):
        if momentum_correction:
            raise ValueError("momentum correction applies to v-form optimizers (LARS); MomentumSGD is u-form "
                             "and needs none")
        super().__init__(learning_rate, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                         exclude=exclude, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        """One u-form update of ``variable``."""
        lr = ops.cast(learning_rate, variable.dtype)
        d, _ = self._decayed_gradient(ops.cast(gradient, variable.dtype), variable)
        u = self.momentums[self._get_variable_index(variable)]
        self.assign(u, self.momentum * u + d)
        self.assign_sub(variable, lr * (d + self.momentum * u if self.nesterov else u))


class LARS(_RecipeOptimizer):
    """LARS (You et al. 2017, Algorithm 1) in the v-form, as the torch backend's ``LARS``.

    Per variable: ``λ = η‖w‖/(‖g‖ + β‖w‖ + ε)`` (1 if a norm is 0; clipped at 1 with
    ``trust_clip``); ``v ← m·v + γ·λ·(g + β·w)``; ``w ← w − v`` (Nesterov:
    ``w ← w − (m·v + γ·λ·(g + β·w))``).

    Args:
        learning_rate: γ, a float or a ``LearningRateSchedule``.
        momentum: m in [0, 1).
        weight_decay: β >= 0.
        trust_coefficient: η > 0 (paper: 0.001).
        eps: ε >= 0.
        nesterov: Nesterov momentum.
        trust_clip: LARC clipping, per-layer LR = min(γ·λ, γ).
        momentum_correction: with a schedule, scale v by γ_t/γ_{t−1} before each update
            (Goyal et al. eq. 10), as ``backends.torch.LARS(momentum_correction=True)`` does.
        exclude: ``exclude(path, shape) -> bool``: variables that get λ = 1 and no weight decay
            (default :func:`bias_and_norm`; ``None`` excludes nothing).

    Raises:
        ValueError: on an out-of-range hyperparameter.
    """

    def __init__(self, learning_rate=0.1, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 0.0, nesterov: bool = False, trust_clip: bool = False,
                 momentum_correction: bool = False, exclude=bias_and_norm, name: str = "lars", **kwargs):
        _check("trust_coefficient", trust_coefficient, math.isfinite(trust_coefficient) and trust_coefficient > 0)
        _check("eps", eps, math.isfinite(eps) and eps >= 0)
        super().__init__(learning_rate, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                         exclude=exclude, name=name, **kwargs)
        self.trust_coefficient, self.eps = float(trust_coefficient), float(eps)
        self.trust_clip, self.momentum_correction = bool(trust_clip), bool(momentum_correction)

    def _trust_ratio(self, variable, gradient, beta):
        w_norm = ops.sqrt(ops.sum(ops.square(variable)))
        g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
        active = ops.logical_and(w_norm > 0, g_norm > 0)
        one = ops.ones_like(w_norm)
        ratio = ops.where(active, self.trust_coefficient * w_norm / ops.where(active, g_norm + beta * w_norm + self.eps, one), one)
        return ops.minimum(ratio, one) if self.trust_clip else ratio

    def _correction(self, dtype):
        """γ_t / γ_{t−1} from the schedule (1 at step 0, for a constant LR, or a zero γ_{t−1})."""
        if not (self.momentum_correction and isinstance(self._learning_rate,
                                                         keras.optimizers.schedules.LearningRateSchedule)):
            return None
        now = ops.cast(self._learning_rate(self.iterations), dtype)
        before = ops.cast(self._learning_rate(ops.maximum(self.iterations - 1, 0)), dtype)
        return ops.where(before > 0, now / ops.where(before > 0, before, ops.ones_like(before)), ops.ones_like(now))

    def update_step(self, gradient, variable, learning_rate):
        """One v-form LARS update of ``variable``."""
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        d, beta = self._decayed_gradient(g, variable)
        local_lr = lr if self._excluded(variable) else lr * self._trust_ratio(variable, g, beta)
        v = self.momentums[self._get_variable_index(variable)]
        factor = self._correction(variable.dtype)
        previous = v if factor is None else v * factor
        self.assign(v, self.momentum * previous + local_lr * d)
        self.assign_sub(variable, self.momentum * v + local_lr * d if self.nesterov else v)

    def get_config(self) -> dict:
        """Keras config, including the LARS hyperparameters."""
        config = super().get_config()
        config.update(trust_coefficient=self.trust_coefficient, eps=self.eps, trust_clip=self.trust_clip,
                      momentum_correction=self.momentum_correction)
        return config
