"""Parameter groups and initialisation for the recipe: no decay/LARS for biases and norms, zero-γ.

References:
    Goyal et al. 2017, arXiv 1706.02677, §5.1 (zero-γ init of each residual block's last BN;
    no weight decay on γ and β is a common refinement). timm's ``param_groups_weight_decay``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.lars import bias_and_norm  # the core's rule, re-exported as backends.torch.bias_and_norm

__all__ = ["bias_and_norm", "param_groups", "zero_gamma_init"]


def param_groups(model: nn.Module, *, weight_decay: float,
                 exclude: Callable[[str, tuple[int, ...]], bool] | None = bias_and_norm) -> list[dict]:
    """Split parameters as timm's ``filter_bias_and_bn`` does: the excluded ones get neither weight
    decay nor LARS adaptation.

    Args:
        model: the model whose trainable parameters are grouped.
        weight_decay: β for the parameters that are not excluded.
        exclude: ``exclude(name, shape) -> bool``, True for a parameter to exclude; the default
            :func:`bias_and_norm` excludes every parameter with ndim <= 1. ``None`` excludes
            nothing. Keras optimizers take the same ``exclude`` argument.

    Returns:
        Up to two param groups (empty ones dropped), each with ``weight_decay`` and ``lars_adapt``
        set, and ``names`` listing the parameter names (for tests and logs).
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            excluded = exclude is not None and exclude(name, tuple(p.shape))
            (no_decay if excluded else decay).append((name, p))
    groups = [
        dict(params=[p for _, p in decay], names=[n for n, _ in decay], weight_decay=weight_decay, lars_adapt=True),
        dict(params=[p for _, p in no_decay], names=[n for n, _ in no_decay], weight_decay=0.0, lars_adapt=False),
    ]
    return [g for g in groups if g["params"]]


@torch.no_grad()
def zero_gamma_init(model: nn.Module) -> int:
    """Set γ = 0 in the last BatchNorm of every residual block (Goyal et al. §5.1).

    Each block's residual branch then starts as the identity's complement: the block outputs its
    shortcut, which eases early training at large LR. Blocks mark their last BN as ``bn_last``.

    Returns:
        The number of BN layers zeroed.
    """
    count = 0
    for module in model.modules():
        bn = getattr(module, "bn_last", None)
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.zero_()
            count += 1
    return count
