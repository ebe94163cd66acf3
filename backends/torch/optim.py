"""LARS as a ``torch.optim.Optimizer``: a port of :func:`harness.lars.lars_step`.

Same update as the numpy reference (You et al. 2017, Algorithm 1, v-form), with a single-tensor
loop and a ``torch._foreach_*`` path that must agree with it. ``step`` makes no device-to-host
sync: the zero-norm guard and trust clipping use ``torch.where``/``clamp`` on device.

Per-group options: ``lars_adapt`` (False → plain momentum SGD, λ = 1) and ``weight_decay``
(0 for biases and norm parameters); see :func:`backends.torch.params.param_groups`.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


def _check(name: str, value: float, ok: bool) -> None:
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r}")


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, arXiv 1708.03888, Alg. 1).

    Per parameter tensor (layer): ``λ = η‖w‖/(‖g‖ + β‖w‖ + ε)`` (1 if a norm is 0, clipped at 1
    with ``trust_clip``); ``v ← m·v + γ·λ·(g + β·w)``; ``w ← w − v`` (Nesterov:
    ``w ← w − (m·v + γ·λ·(g + β·w))``). The velocity carries the LR (v-form), so a changing LR
    calls for momentum correction: :class:`backends.torch.schedule.RecipeLR` applies it.

    Args:
        params: parameters or param groups (dicts may set any option below per group).
        lr: γ, global learning rate. It has a default only because Horovod's
            ``DistributedOptimizer`` re-creates the class from param groups, which carry the LR.
        momentum: m in [0, 1).
        weight_decay: β >= 0.
        trust_coefficient: η > 0 (paper: 0.001).
        eps: ε >= 0 in the trust-ratio denominator.
        nesterov: Nesterov momentum.
        trust_clip: LARC clipping, per-layer LR = min(γ·λ, γ).
        foreach: use the ``torch._foreach_*`` path (default: True).

    Raises:
        ValueError: on an out-of-range hyperparameter.
    """

    velocity_form = True  # the LR lives inside the momentum buffer (see harness.sgd)

    def __init__(self, params, lr: float = 1e-3, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 0.0, nesterov: bool = False,
                 trust_clip: bool = False, foreach: bool = True):
        _check("learning rate", lr, math.isfinite(lr) and lr >= 0)
        _check("momentum", momentum, 0 <= momentum < 1)
        _check("weight_decay", weight_decay, math.isfinite(weight_decay) and weight_decay >= 0)
        _check("trust_coefficient", trust_coefficient, math.isfinite(trust_coefficient) and trust_coefficient > 0)
        _check("eps", eps, math.isfinite(eps) and eps >= 0)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        eps=eps, nesterov=nesterov, trust_clip=trust_clip, lars_adapt=True, foreach=foreach)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one LARS update to every parameter that has a gradient.

        Returns:
            The closure's loss, if a closure was given.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("LARS does not support sparse gradients")
            grads = [p.grad for p in params]
            bufs = [self._buffer(p) for p in params]
            update = _lars_foreach if group["foreach"] else _lars_single_tensor
            update(params, grads, bufs, lr=group["lr"], momentum=group["momentum"],
                   weight_decay=group["weight_decay"], trust_coefficient=group["trust_coefficient"],
                   eps=group["eps"], nesterov=group["nesterov"], trust_clip=group["trust_clip"],
                   adapt=group["lars_adapt"])
        return loss

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state["momentum_buffer"]


def _trust_ratio(w_norm: torch.Tensor, g_norm: torch.Tensor, *, trust_coefficient: float, weight_decay: float,
                 eps: float, trust_clip: bool) -> torch.Tensor:
    """λ on device, 1 where either norm is 0; clipped at 1 with ``trust_clip``. No host sync."""
    active = (w_norm > 0) & (g_norm > 0)
    denominator = torch.where(active, g_norm + weight_decay * w_norm + eps, torch.ones_like(g_norm))
    ratio = torch.where(active, trust_coefficient * w_norm / denominator, torch.ones_like(w_norm))
    return ratio.clamp(max=1.0) if trust_clip else ratio


def _lars_single_tensor(params, grads, bufs, *, lr, momentum, weight_decay, trust_coefficient, eps, nesterov,
                        trust_clip, adapt):
    for p, g, buf in zip(params, grads, bufs):
        d = g.add(p, alpha=weight_decay) if weight_decay else g.clone()
        if adapt:
            ratio = _trust_ratio(p.norm(), g.norm(), trust_coefficient=trust_coefficient,
                                 weight_decay=weight_decay, eps=eps, trust_clip=trust_clip)
            d.mul_(ratio * lr)
        else:
            d.mul_(lr)
        buf.mul_(momentum).add_(d)
        p.sub_(buf * momentum + d if nesterov else buf)


def _lars_foreach(params, grads, bufs, *, lr, momentum, weight_decay, trust_coefficient, eps, nesterov,
                  trust_clip, adapt):
    d = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else torch._foreach_mul(grads, 1.0)
    if adapt:
        w_norms = torch.stack(torch._foreach_norm(params))
        g_norms = torch.stack(torch._foreach_norm(grads))
        ratios = _trust_ratio(w_norms, g_norms, trust_coefficient=trust_coefficient, weight_decay=weight_decay,
                              eps=eps, trust_clip=trust_clip) * lr
        torch._foreach_mul_(d, list(ratios.unbind()))
    else:
        torch._foreach_mul_(d, lr)
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, d)
    if nesterov:
        torch._foreach_sub_(params, torch._foreach_add(torch._foreach_mul(bufs, momentum), d))
    else:
        torch._foreach_sub_(params, bufs)
