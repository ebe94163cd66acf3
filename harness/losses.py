"""The training loss both backends must equal: softmax cross-entropy with optional label smoothing.

.. math::
    q_c = (1 - \\varepsilon)\\,[c = y] + \\varepsilon / C, \\qquad
    \\ell(z, y) = -\\sum_c q_c \\log \\operatorname{softmax}(z)_c

averaged over the batch (the engines normalise the summed loss by the global batch kn, as the MLPerf
reference's ``sum(CE) / global batch`` does). ε = 0 is plain cross-entropy. PyTorch's
``F.cross_entropy(label_smoothing=ε)`` and Keras's ``CategoricalCrossentropy(label_smoothing=ε)``
both use this q.

References:
    Szegedy et al. 2016, arXiv 1512.00567, §7 (label-smoothing regularisation). MLPerf ResNet-50
    reference: mlcommons/training ``image_classification/tensorflow2/resnet_runnable.py``
    (``categorical_crossentropy(labels, logits, label_smoothing=...)``, ``--label_smoothing=0.1``).
"""

from __future__ import annotations

import math

import numpy as np


def smoothed_targets(labels, num_classes: int, label_smoothing: float = 0.0) -> np.ndarray:
    """q = (1 − ε)·one-hot(y) + ε/C: float64 (N, C).

    Args:
        labels: integer class indices in [0, C), shape (N,).
        num_classes: C >= 2.
        label_smoothing: ε in [0, 1).

    Raises:
        ValueError: ε out of range, C < 2, or a label outside [0, C).
    """
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not (math.isfinite(label_smoothing) and 0 <= label_smoothing < 1):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu" or np.any((y < 0) | (y >= num_classes)):
        raise ValueError(f"labels must be a 1-D integer array of classes in [0, {num_classes}), got {labels!r}")
    return (1.0 - label_smoothing) * np.eye(num_classes)[y] + label_smoothing / num_classes


def cross_entropy(logits, labels, *, label_smoothing: float = 0.0) -> float:
    """Mean over the batch of −Σ_c q_c log softmax(z)_c, computed stably in float64.

    Args:
        logits: z, shape (N, C).
        labels: y, integer classes, shape (N,).
        label_smoothing: ε in [0, 1).

    Returns:
        The mean loss (nats per image).

    Raises:
        ValueError: on mismatched shapes or an invalid ε or label.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) != len(np.asarray(labels)):
        raise ValueError(f"logits must be (N, C) with N labels, got {z.shape} and {np.shape(labels)}")
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    q = smoothed_targets(labels, z.shape[1], label_smoothing)
    return float(-(q * log_softmax).sum(axis=1).mean())
