"""PyTorch backend: LARS, the recipe LR scheduler, param groups, models and Horovod wiring."""

from backends.torch.optim import LARS
from backends.torch.params import param_groups, zero_gamma_init
from backends.torch.schedule import RecipeLR

__all__ = ["LARS", "RecipeLR", "param_groups", "zero_gamma_init"]
