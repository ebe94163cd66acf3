"""Learning-rate scaling rules: the peak LR for a global batch kn.

.. math::
    \\eta(kn) = \\eta_{ref} \\cdot s(kn / B_{ref}),\\quad
    s(r) = r \\text{ (linear)},\\ \\sqrt{r} \\text{ (sqrt)},\\ 1 \\text{ (none)}

References:
    Goyal et al. 2017, arXiv 1706.02677, §2.1 (linear scaling rule: η = 0.1·kn/256).
    Krizhevsky 2014, arXiv 1404.5997; Hoffer et al. 2017, arXiv 1705.08741 (square-root rule).
"""

from __future__ import annotations

import math

RULES = ("linear", "sqrt", "none")


def scale_factor(global_batch: int, *, reference_batch: int = 256, rule: str = "linear") -> float:
    """The factor s(kn / B_ref) by which the reference LR is multiplied.

    Args:
        global_batch: kn, images per optimizer step summed over all k workers (and accumulation).
        reference_batch: B_ref, the batch the reference LR was tuned for (Goyal: 256).
        rule: ``"linear"``, ``"sqrt"`` or ``"none"``.

    Returns:
        The dimensionless factor (1.0 when ``global_batch == reference_batch``).

    Raises:
        ValueError: if a batch is not a positive integer or ``rule`` is unknown.
    """
    for name, value in (("global_batch", global_batch), ("reference_batch", reference_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    ratio = global_batch / reference_batch
    if rule == "linear":
        return ratio
    if rule == "sqrt":
        return math.sqrt(ratio)
    if rule == "none":
        return 1.0
    raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")


def scaled_lr(reference_lr: float, global_batch: int, *, reference_batch: int = 256,
              rule: str = "linear") -> float:
    """Peak learning rate for a global batch kn under a scaling rule.

    Example (Goyal et al. 2017, §2.1 and Table 1): ``scaled_lr(0.1, 8192) == 3.2``.

    Args:
        reference_lr: η_ref, the LR tuned at ``reference_batch`` (Goyal: 0.1).
        global_batch: kn, images per optimizer step over all workers.
        reference_batch: B_ref (Goyal: 256).
        rule: ``"linear"`` (Goyal eq. for kn/256), ``"sqrt"`` or ``"none"``.

    Returns:
        The peak LR, in the same units as ``reference_lr``.

    Raises:
        ValueError: if ``reference_lr`` is not a finite number > 0, a batch is not a positive
            integer, or ``rule`` is unknown.
    """
    if not (isinstance(reference_lr, (int, float)) and math.isfinite(reference_lr) and reference_lr > 0):
        raise ValueError(f"reference_lr must be a finite number > 0, got {reference_lr!r}")
    return float(reference_lr) * scale_factor(global_batch, reference_batch=reference_batch, rule=rule)


# The MLPerf ResNet-50 reference's LR table: (batch below which the row applies, initial LR, warmup
# epochs); the last row applies to every larger batch. mlcommons/training
# image_classification/tensorflow2/lars_util.py, PolynomialDecayWithWarmup.__init__.
MLPERF_LARS_TABLE = ((16384, 10.0, 5.0), (32768, 25.0, 5.0), (None, 31.2, 25.0))


def mlperf_lars_lr(global_batch: int) -> tuple[float, float]:
    """The MLPerf reference's LARS peak LR and warmup length for a global batch kn.

    ``kn < 16384``: LR 10.0, 5 warmup epochs; ``kn < 32768``: 25.0, 5 epochs; otherwise 31.2,
    25 epochs. The reference applies no scaling rule: the LR is read from this table (and its
    ``--base_learning_rate`` flag overrides it).

    Args:
        global_batch: kn, images per optimizer step.

    Returns:
        ``(peak_lr, warmup_epochs)``.

    Raises:
        ValueError: if ``global_batch`` is not a positive integer.

    References:
        mlcommons/training ``image_classification/tensorflow2/lars_util.py``
        (``PolynomialDecayWithWarmup``).
    """
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch <= 0:
        raise ValueError(f"global_batch must be a positive integer, got {global_batch!r}")
    for below, lr, warmup_epochs in MLPERF_LARS_TABLE[:-1]:
        if global_batch < below:
            return lr, warmup_epochs
    return MLPERF_LARS_TABLE[-1][1:]
