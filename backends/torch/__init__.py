"""PyTorch backend: the same public names as :mod:`backends.keras`, for the same things.

``LARS`` and ``MomentumSGD`` (optimizers; LARS applies momentum correction itself), ``RecipeLR``
(the recipe's LR as a multiplier of each group's base LR), ``param_groups`` with the
``bias_and_norm`` exclusion rule, ``zero_gamma_init``, and the Horovod wiring:
``DistributedOptimizer``, ``broadcast_initial_state``, ``metric_average``, ``rank0_only``
(``horovod.torch`` is imported only when those are called), ``pin_gpu`` (one GPU per local rank) and
``normalize_images`` (uint8 batches of the image pipeline normalised on the device).
"""

from backends.torch.device import normalize_images, pin_gpu
from backends.torch.optim import (
                                  LARS,
                                  DistributedOptimizer,
                                  MomentumSGD,
                                  broadcast_initial_state,
                                  metric_average,
                                  rank0_only,
)
from backends.torch.params import bias_and_norm, param_groups, zero_gamma_init
from backends.torch.schedule import RecipeLR

__all__ = ["LARS", "DistributedOptimizer", "MomentumSGD", "RecipeLR", "bias_and_norm", "broadcast_initial_state",
           "metric_average", "normalize_images", "param_groups", "pin_gpu", "rank0_only", "zero_gamma_init"]
