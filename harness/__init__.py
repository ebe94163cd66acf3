"""The large-minibatch SGD recipe, framework-free: the specification every backend must match.

Modules: :mod:`~harness.scaling` (peak LR for kn), :mod:`~harness.schedules` (warmup and decay),
:mod:`~harness.sgd` (momentum SGD, momentum correction), :mod:`~harness.lars` (LARS),
:mod:`~harness.recipe` (the whole recipe, presets), :mod:`~harness.sharding` (per-epoch shards).

Imports numpy and the standard library only.

References:
    Goyal et al. 2017, arXiv 1706.02677. You, Gitman & Ginsburg 2017, arXiv 1708.03888.
"""

from harness import lars, recipe, scaling, schedules, sgd, sharding
from harness.recipe import PRESETS, Recipe

__all__ = ["PRESETS", "Recipe", "lars", "recipe", "scaling", "schedules", "sgd", "sharding"]
__version__ = "0.1.0"
