"""A Keras ``LearningRateSchedule`` whose values come from a numpy-core :class:`~harness.recipe.Recipe`.

Holds no schedule math: the closed-form LR of every step, ``recipe.lr(0..total_steps)``, is computed
by the core once and looked up by step (clamped to the last step), so Keras and PyTorch runs use the
same numbers. Serialisable: the config is the recipe's dict.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
from keras import ops

from harness.recipe import Recipe


@keras.saving.register_keras_serializable(package="harness")
class RecipeLR(keras.optimizers.schedules.LearningRateSchedule):
    """``step -> recipe.lr(step)`` (= ``recipe.peak_lr × recipe.multiplier(step)``) for Keras optimizers.

    ``backends.torch.RecipeLR`` multiplies each param group's base LR by ``recipe.multiplier(step)``;
    the two give the same LRs when the torch optimizer's LR is ``recipe.peak_lr``.

    Args:
        recipe: a :class:`~harness.recipe.Recipe` or its dict.

    Raises:
        ValueError: if the recipe is invalid.
    """

    def __init__(self, recipe: Recipe | dict):
        self.recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
        self._table = ops.convert_to_tensor(
            self.recipe.lr(np.arange(self.recipe.total_steps + 1)).astype(np.float32))

    def __call__(self, step):
        """The LR at ``step`` (a scalar tensor or int), float32."""
        index = ops.clip(ops.cast(step, "int32"), 0, self.recipe.total_steps)
        return ops.take(self._table, index)

    def get_config(self) -> dict:
        """``{"recipe": recipe.to_dict()}``."""
        return {"recipe": self.recipe.to_dict()}


@keras.saving.register_keras_serializable(package="harness")
class RecipeSchedule(RecipeLR):
    """Deprecated name of :class:`RecipeLR` (kept so that saved configs still load)."""

    def __init__(self, recipe: Recipe | dict):
        warnings.warn("RecipeSchedule is deprecated: use backends.keras.RecipeLR", DeprecationWarning, stacklevel=2)
        super().__init__(recipe)
