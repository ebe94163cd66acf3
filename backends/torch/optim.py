"""Torch optimizers porting the numpy core, and their Horovod wiring.

:class:`LARS` ports :func:`harness.lars.lars_step` (You et al. 2017, Algorithm 1, v-form) with a
single-tensor loop and a ``torch._foreach_*`` path that must agree with it, and applies momentum
correction itself (Goyal et al. eq. 10). :class:`MomentumSGD` is ``torch.optim.SGD`` (u-form,
:func:`harness.sgd.sgd_step`) with the same keyword-only hyperparameters as the Keras port. ``step``
makes no device-to-host sync: the zero-norm guard and trust clipping use ``torch.where``/``clamp``.

Per-group options: ``lars_adapt`` (False → plain momentum SGD, λ = 1) and ``weight_decay`` (0 for
biases and norm parameters); see :func:`backends.torch.params.param_groups`.

:func:`DistributedOptimizer`, :func:`broadcast_initial_state`, :func:`metric_average` and
:func:`rank0_only` wire them into ``horovod.torch``, imported only when they are called.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer
from torch.optim.optimizer import _default_to_fused_or_foreach

from backends.torch.device import to_cpu


def _check(name: str, value: float, ok: bool) -> None:
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r}")


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, arXiv 1708.03888, Alg. 1).

    Per parameter tensor (layer): ``λ = η‖w‖/(‖g‖ + β‖w‖ + ε)`` (1 if a norm is 0, clipped at 1
    with ``trust_clip``); ``v ← m·v + γ·λ·(g + β·w)``; ``w ← w − v`` (Nesterov:
    ``w ← w − (m·v + γ·λ·(g + β·w))``). The velocity carries the LR (v-form), so a changing LR
    calls for momentum correction (Goyal et al. 2017, arXiv 1706.02677, eq. 10): with
    ``momentum_correction`` each group remembers the LR of its last step and, when its LR has
    changed from γ_t to γ_{t+1}, scales its momentum buffers by γ_{t+1}/γ_t before the update.

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
        momentum_correction: rescale the velocity when the LR changes (Goyal eq. 10). Group LRs must
            be Python floats (as LR schedulers set them); the factor is computed on the host.
        foreach: use the ``torch._foreach_*`` path (True) or the single-tensor loop (False). None (the
            default) chooses per group at each step as ``torch.optim`` does
            (``_default_to_fused_or_foreach``): foreach when every parameter is on a device with foreach
            kernels (CUDA), the single-tensor loop otherwise (the CPU, where it is the faster path).

    Raises:
        ValueError: on an out-of-range hyperparameter.

    Example::

        optimizer = LARS(param_groups(model, weight_decay=5e-4), recipe.peak_lr, trust_coefficient=0.02,
                         momentum_correction=True)
        scheduler = RecipeLR(optimizer, recipe)
    """

    velocity_form = True  # the LR lives inside the momentum buffer (see harness.sgd)

    def __init__(self, params, lr: float = 1e-3, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 0.0, nesterov: bool = False,
                 trust_clip: bool = False, momentum_correction: bool = False, foreach: bool | None = None):
        _check_common(lr, momentum, weight_decay)
        _check("trust_coefficient", trust_coefficient, math.isfinite(trust_coefficient) and trust_coefficient > 0)
        _check("eps", eps, math.isfinite(eps) and eps >= 0)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        eps=eps, nesterov=nesterov, trust_clip=trust_clip, momentum_correction=momentum_correction,
                        lars_adapt=True, foreach=foreach)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # a state_dict saved before the option existed
            group.setdefault("momentum_correction", False)
            group.setdefault("foreach", None)

    @torch.no_grad()
    def step(self, closure=None):
        """Correct each group's momentum for an LR change, then apply one LARS update to every
        parameter that has a gradient.

        Returns:
            The closure's loss, if a closure was given.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._correct_momentum(group)
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("LARS does not support sparse gradients")
            grads = [p.grad for p in params]
            bufs = [self._buffer(p) for p in params]
            update = _lars_foreach if _use_foreach(group, params) else _lars_single_tensor
            update(params, grads, bufs, lr=group["lr"], momentum=group["momentum"],
                   weight_decay=group["weight_decay"], trust_coefficient=group["trust_coefficient"],
                   eps=group["eps"], nesterov=group["nesterov"], trust_clip=group["trust_clip"],
                   adapt=group["lars_adapt"])
        return loss

    def _correct_momentum(self, group: dict) -> None:
        """Scale the group's buffers by γ_{t+1}/γ_t (Goyal eq. 10) if its LR changed since its last
        step; 1 at the first step or after a zero LR (:func:`harness.sgd.momentum_correction_factor`).

        ``velocity_lr``, the LR the buffers were last built with, is a group option, so it is saved
        in ``state_dict`` and a resumed run corrects exactly as an uninterrupted one.
        """
        lr, previous = group["lr"], group.get("velocity_lr")
        group["velocity_lr"] = lr
        if not group["momentum_correction"] or not previous or lr == previous:
            return
        bufs = [self.state[p]["momentum_buffer"] for p in group["params"]
                if "momentum_buffer" in self.state.get(p, {})]
        if bufs and _use_foreach(group, bufs):
            torch._foreach_mul_(bufs, lr / previous)
        else:
            for buf in bufs:
                buf.mul_(lr / previous)

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state["momentum_buffer"]


class MomentumSGD(torch.optim.SGD):
    """Momentum SGD in the u-form: ``torch.optim.SGD`` (:func:`harness.sgd.sgd_step`).

    ``u ← m·u + (g + β·w)``; ``w ← w − γ·u`` (Nesterov: ``w ← w − γ·(g + β·w + m·u)``). The LR
    multiplies the update, so a changing γ needs no momentum correction (Goyal et al. eq. 9).
    The keyword-only hyperparameters are those of the Keras port and of :class:`LARS`.

    Args:
        params: parameters or param groups (e.g. :func:`backends.torch.params.param_groups`).
        lr: γ (a default only for Horovod's ``DistributedOptimizer``, as in :class:`LARS`).
        momentum: m in [0, 1).
        weight_decay: β >= 0, coupled L2 (added to the gradient).
        nesterov: Nesterov momentum.
        momentum_correction: must be False: the u-form needs none.
        foreach: torch's ``foreach`` option (None: torch chooses).

    Raises:
        ValueError: on an out-of-range hyperparameter, or ``momentum_correction=True``.
    """

    velocity_form = False  # the LR multiplies the update (see harness.sgd)

    def __init__(self, params, lr: float = 1e-3, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = False, momentum_correction: bool = False, foreach: bool | None = None):
        _check_common(lr, momentum, weight_decay)
        if momentum_correction:
            raise ValueError("momentum correction applies to v-form optimizers (LARS); MomentumSGD is u-form "
                             "and needs none")
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                         foreach=foreach)


def _use_foreach(group: dict, tensors: list[torch.Tensor]) -> bool:
    """The group's ``foreach`` option; for None, torch.optim's choice for ``tensors`` (foreach on CUDA, not CPU)."""
    if group["foreach"] is not None:
        return group["foreach"]
    return _default_to_fused_or_foreach(tensors, differentiable=False, use_fused=False)[1]


def _check_common(lr: float, momentum: float, weight_decay: float) -> None:
    _check("learning rate", lr, math.isfinite(lr) and lr >= 0)
    _check("momentum", momentum, 0 <= momentum < 1)
    _check("weight_decay", weight_decay, math.isfinite(weight_decay) and weight_decay >= 0)


def _trust_ratio(w_norm: torch.Tensor, g_norm: torch.Tensor, *, trust_coefficient: float, weight_decay: float,
                 eps: float, trust_clip: bool, lr: float = 1.0) -> torch.Tensor:
    """γ·λ on device: λ = η‖w‖/(‖g‖ + β‖w‖ + ε), 1 where either norm is 0, clipped at 1 with ``trust_clip``.

    No host sync, and few kernels (the single-tensor path calls this once per tensor): norms are >= 0, so
    ``min(‖w‖, ‖g‖) > 0`` says both are positive; γ·min(λ, 1) is ``clamp(γ·λ, max=γ)`` as γ >= 0.
    """
    denominator = g_norm.add(w_norm, alpha=weight_decay) if weight_decay else g_norm
    if eps:
        denominator = denominator + eps
    scale = torch.where(torch.minimum(w_norm, g_norm) > 0, (trust_coefficient * lr) * w_norm / denominator, lr)
    return scale.clamp(max=lr) if trust_clip else scale


def _lars_single_tensor(params, grads, bufs, *, lr, momentum, weight_decay, trust_coefficient, eps, nesterov,
                        trust_clip, adapt):
    """The update one tensor at a time (torch.optim's default on the CPU), with c = γ·λ on device.

    ``v ← m·v``, ``v ← v + c·g``, ``v ← v + (c·β)·w`` (``addcmul_`` with c a 0-dim tensor: no host sync),
    ``w ← w − v``: no scratch tensor, so nothing is allocated per tensor and step. Allocating ``d = g + β·w``
    (as timm's single-tensor ``Lars`` does) was measured 10-15% slower on ResNet-50's tensors, CPU.
    Nesterov keeps ``c·d`` for the look-ahead ``w ← w − (m·v + c·d)``.
    """
    for p, g, buf in zip(params, grads, bufs):
        scale = _trust_ratio(p.norm(), g.norm(), trust_coefficient=trust_coefficient, weight_decay=weight_decay,
                             eps=eps, trust_clip=trust_clip, lr=lr) if adapt else lr
        buf.mul_(momentum)
        if nesterov:
            d = g.add(p, alpha=weight_decay).mul_(scale) if weight_decay else g.mul(scale)
            buf.add_(d)
            p.sub_(d.add_(buf, alpha=momentum))
            continue
        if adapt:
            buf.addcmul_(g, scale)
            if weight_decay:
                buf.addcmul_(p, scale * weight_decay)
        else:
            buf.add_(g, alpha=lr)
            if weight_decay:
                buf.add_(p, alpha=lr * weight_decay)
        p.sub_(buf)


def _lars_foreach(params, grads, bufs, *, lr, momentum, weight_decay, trust_coefficient, eps, nesterov,
                  trust_clip, adapt):
    """The same update with the fewest passes over memory that stock ``torch._foreach_*`` ops allow.

    Per tensor, with c = γ·λ: ``d = g + β·w`` (one pass writing a scratch tensor), then the momentum
    update ``v ← m·v + c·d`` as one ``lerp``: ``v ← v + (1 − m)·(d·c/(1 − m) − v)``, then ``w ← w − v``.
    Besides the two norms that is 4 passes (timm's ``Lars`` and torch's ``SGD(foreach)`` take 5), all on
    device, with no host sync. (A scratch ``d`` kept across steps instead of allocated was measured
    slower on the CPU: the copy into it costs more than the allocation it saves.)
    """
    d = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else torch._foreach_mul(grads, 1.0)
    if adapt:
        w_norms = torch.stack(torch._foreach_norm(params))
        g_norms = torch.stack(torch._foreach_norm(grads))
        scale = _trust_ratio(w_norms, g_norms, trust_coefficient=trust_coefficient, weight_decay=weight_decay,
                             eps=eps, trust_clip=trust_clip, lr=lr)
    else:
        scale = None
    if nesterov:  # w ← w − (m·v_new + c·d): keep c·d for the look-ahead
        torch._foreach_mul_(d, list(scale.unbind()) if scale is not None else lr)
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, d)
        torch._foreach_add_(d, bufs, alpha=momentum)
        torch._foreach_sub_(params, d)
        return
    # c/(1 − m) per tensor; m < 1 is checked at construction.
    torch._foreach_mul_(d, list((scale / (1.0 - momentum)).unbind()) if scale is not None else lr / (1.0 - momentum))
    torch._foreach_lerp_(bufs, d, 1.0 - momentum)
    torch._foreach_sub_(params, bufs)


# -- Horovod wiring (horovod.torch is imported when these are called) ----------------------------
COMPRESSIONS = ("none", "fp16")


def _compression(hvd, compression):
    """``"none"``/``"fp16"`` → ``hvd.Compression.*``; a Horovod compressor passes through."""
    if not isinstance(compression, str):
        return compression
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    return getattr(hvd.Compression, compression)


def DistributedOptimizer(optimizer: Optimizer, *, named_parameters, compression="none",  # noqa: N802
                         backward_passes_per_step: int = 1) -> Optimizer:
    """``optimizer`` averaging gradients over the k Horovod workers (``hvd.DistributedOptimizer``).

    Gradients are allreduced (op ``Average``) as ``backward()`` produces them; ``step()`` waits for
    them. With ``backward_passes_per_step`` = s, gradients of s backward passes are summed locally
    before one allreduce (gradient accumulation).

    Args:
        optimizer: a :class:`LARS`, :class:`MomentumSGD` or any ``torch.optim.Optimizer``.
        named_parameters: ``model.named_parameters()``: Horovod names each allreduce by them.
        compression: ``"none"``, ``"fp16"`` (allreduce in half precision) or a Horovod compressor.
        backward_passes_per_step: s >= 1.

    Returns:
        Horovod's wrapper: an instance of ``optimizer``'s class, sharing its param groups.

    Raises:
        ValueError: an unknown compression.
    """
    import horovod.torch as hvd

    return hvd.DistributedOptimizer(optimizer, named_parameters=named_parameters,
                                    compression=_compression(hvd, compression), op=hvd.Average,
                                    backward_passes_per_step=backward_passes_per_step)


def broadcast_initial_state(model: torch.nn.Module, optimizer: Optimizer, *, root_rank: int = 0) -> None:
    """Copy rank ``root_rank``'s parameters, buffers and optimizer state to every rank, in place.

    Call once after building the model and optimizer, before training. Nothing is stepped: unlike
    Horovod's ``broadcast_optimizer_state``, which first initialises an optimizer that has no state
    by one ``step()`` on zero gradients (with weight decay, a decay step at the current LR that also
    leaves momentum behind), the root's ``state_dict`` (hyperparameters of every group and whatever
    state it has, empty for a new optimizer) is broadcast as it is and loaded on the other ranks. So
    the first training step is the recipe's first step (Goyal et al. 2017, arXiv 1706.02677, §2),
    and a run resumed on rank 0 hands its momentum buffers to every rank.

    Args:
        model: the model; its ``state_dict`` (parameters and buffers, e.g. BN statistics) is broadcast.
        optimizer: a torch optimizer or Horovod's ``DistributedOptimizer`` around one.
        root_rank: the rank whose values every rank takes.
    """
    import horovod.torch as hvd

    hvd.broadcast_parameters(model.state_dict(), root_rank=root_rank)
    state = to_cpu(optimizer.state_dict()) if hvd.rank() == root_rank else None
    state = hvd.broadcast_object(state, root_rank=root_rank, name="harness.optimizer_state")
    if hvd.rank() != root_rank:
        optimizer.load_state_dict(state)  # tensors move to each parameter's device


def metric_average(metrics, *, name: str = "harness.metric_average") -> dict[str, float]:
    """``{name: value}`` averaged over all ranks (one allreduce; every rank must call it).

    Args:
        metrics: a mapping of metric names to numbers; every rank passes the same names.
    """
    import horovod.torch as hvd

    names = sorted(metrics)
    values = torch.tensor([float(metrics[n]) for n in names], dtype=torch.float64)
    if hvd.size() > 1 and names:
        values = hvd.allreduce(values, op=hvd.Average, name=name)
    return dict(zip(names, values.tolist()))


def rank0_only(*items) -> list:
    """``items`` on rank 0 and nothing elsewhere: loggers, progress bars, checkpoint writers."""
    import horovod.torch as hvd

    return list(items) if hvd.rank() == 0 else []
