"""Momentum SGD forms and momentum correction (Goyal et al. 2017, §2.3, eqs. 9-10)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sgd import momentum_correction, momentum_correction_factor, sgd_step


def _grad(w, t):
    """A deterministic gradient that depends on the weights: a quadratic plus a per-step term."""
    return [0.3 * w[0] + np.sin(t + np.arange(w[0].size)), -0.2 * w[1] + np.cos(t)]


def _run(lrs, *, form, correct, momentum=0.9, weight_decay=1e-3, nesterov=False):
    w = [np.linspace(-1, 1, 5), np.array([[0.5, -0.5], [2.0, 1.0]])]
    v = [np.zeros_like(p) for p in w]
    previous = lrs[0]
    for t, lr in enumerate(lrs):
        if correct:
            v = momentum_correction(v, lr_prev=previous, lr_next=lr)
        w, v = sgd_step(w, _grad(w, t), v, lr=lr, momentum=momentum, weight_decay=weight_decay,
                        nesterov=nesterov, form=form)
        previous = lr
    return w


lr_lists = st.lists(st.floats(min_value=1e-4, max_value=5.0), min_size=2, max_size=25)


@settings(max_examples=80)
@given(lrs=lr_lists, nesterov=st.booleans())
def test_corrected_v_form_equals_u_form_under_a_changing_schedule(lrs, nesterov):
    u = _run(lrs, form="u", correct=False, nesterov=nesterov)
    v = _run(lrs, form="v", correct=True, nesterov=nesterov)
    for a, b in zip(u, v):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)


def test_uncorrected_v_form_differs_when_the_lr_jumps():
    lrs = [0.1] * 5 + [3.2] * 5  # constant warmup's jump (Goyal §2.2)
    u = _run(lrs, form="u", correct=False)
    v = _run(lrs, form="v", correct=False)
    assert not np.allclose(u[0], v[0], rtol=1e-3)


def test_forms_agree_without_correction_at_constant_lr():
    u = _run([0.5] * 10, form="u", correct=False)
    v = _run([0.5] * 10, form="v", correct=False)
    np.testing.assert_allclose(v[0], u[0], rtol=1e-12)


def test_u_form_step_by_hand_with_weight_decay_and_nesterov():
    # d = 1 + 0.1*2 = 1.2; u = 0.9*1 + 1.2 = 2.1; nesterov step = 1.2 + 0.9*2.1 = 3.09; w = 2 - 0.1*3.09
    w, u = sgd_step([np.array([2.0])], [np.array([1.0])], [np.array([1.0])], lr=0.1, momentum=0.9,
                    weight_decay=0.1, nesterov=True)
    np.testing.assert_allclose(u[0], [2.1], rtol=1e-15)
    np.testing.assert_allclose(w[0], [2.0 - 0.309], rtol=1e-15)


def test_decay_mask_turns_weight_decay_off_per_parameter():
    w, _ = sgd_step([np.ones(2), np.ones(2)], [np.zeros(2)] * 2, [np.zeros(2)] * 2, lr=1.0, momentum=0.0,
                    weight_decay=0.5, decay_mask=[True, False])
    np.testing.assert_array_equal(w[0], [0.5, 0.5])
    np.testing.assert_array_equal(w[1], [1.0, 1.0])


def test_correction_factor():
    assert momentum_correction_factor(0.1, 3.2) == pytest.approx(32.0)
    assert momentum_correction_factor(0.0, 3.2) == 1.0
    with pytest.raises(ValueError, match="lr_next"):
        momentum_correction_factor(0.1, -1.0)
    with pytest.raises(ValueError, match="form"):
        sgd_step([np.zeros(1)], [np.zeros(1)], [np.zeros(1)], lr=0.1, form="w")
