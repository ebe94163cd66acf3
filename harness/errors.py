"""Errors shared by the backends and the CLI."""


class NonFiniteError(RuntimeError):
    """A step's averaged gradient held NaN or Inf and the policy is ``stop``: the step was not applied.

    Policy (``harness train --nonfinite``): ``stop`` (default) raises this on every rank at once —
    the averaged gradient is the same everywhere, so the ranks agree; ``skip`` leaves weights,
    momentum and the LR schedule untouched, counts the step in ``nonfinite_steps_skipped`` and goes on.
    """
