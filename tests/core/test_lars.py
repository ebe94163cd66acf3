"""LARS reference against a hand-computed example, its guards, and hypothesis properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.lars import lars_step, trust_ratio
from harness.sgd import sgd_step


def test_hand_computed_two_layers_one_with_zero_weights():
    # Layer 1: ||w|| = 5, ||g|| = 1, beta = 0.01 -> lambda = 0.001*5 / (1 + 0.05) = 1/210.
    #   d = g + beta*w = [0.63, 0.84]; v = 0.9*[0.1, -0.1] + 2/210*d = [0.096, -0.082].
    # Layer 2: ||w|| = 0 -> lambda = 1; d = g; v = 2*g = [2, 4, 4]; w = -v.
    params = [np.array([3.0, 4.0]), np.zeros(3)]
    grads = [np.array([0.6, 0.8]), np.array([1.0, 2.0, 2.0])]
    velocities = [np.array([0.1, -0.1]), np.zeros(3)]
    new_w, new_v = lars_step(params, grads, velocities, lr=2.0, momentum=0.9, weight_decay=0.01,
                             trust_coefficient=0.001, eps=0.0)
    np.testing.assert_allclose(new_v[0], [0.096, -0.082], rtol=0, atol=1e-12)
    np.testing.assert_allclose(new_w[0], [2.904, 4.082], rtol=0, atol=1e-12)
    np.testing.assert_allclose(new_v[1], [2.0, 4.0, 4.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(new_w[1], [-2.0, -4.0, -4.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(params[0], [3.0, 4.0])  # inputs untouched


def test_trust_ratio_closed_form_and_zero_guard():
    assert trust_ratio(5.0, 1.0, trust_coefficient=0.001, weight_decay=0.01) == pytest.approx(1 / 210, rel=1e-15)
    assert trust_ratio(2.0, 1.0, trust_coefficient=0.5, eps=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(trust_ratio(np.array([0.0, 3.0, 0.0]), np.array([1.0, 0.0, 0.0]),
                                              trust_coefficient=0.001), [1.0, 1.0, 1.0])


def test_trust_clip_caps_the_layer_lr_at_the_global_lr():
    w, g = [np.array([100.0])], [np.array([1e-6])]  # lambda = 0.1 / 1e-6 = 1e5
    clipped, _ = lars_step(w, g, [np.zeros(1)], lr=0.5, momentum=0.0, trust_clip=True)
    unclipped, _ = lars_step(w, g, [np.zeros(1)], lr=0.5, momentum=0.0)
    np.testing.assert_allclose(clipped[0], 100.0 - 0.5 * 1e-6, rtol=1e-15)
    np.testing.assert_allclose(unclipped[0], 100.0 - 0.5 * 1e5 * 1e-6, rtol=1e-12)


def test_excluded_layers_take_plain_momentum_sgd_without_decay():
    rng = np.random.default_rng(0)
    w, g, v = ([rng.normal(size=(3, 2)), rng.normal(size=4)] for _ in range(3))
    lars_w, lars_v = lars_step(w, g, v, lr=0.3, momentum=0.9, weight_decay=0.1,
                               adapt_mask=[True, False], decay_mask=[True, False])
    sgd_w, sgd_v = sgd_step([w[1]], [g[1]], [v[1]], lr=0.3, momentum=0.9, form="v")
    np.testing.assert_allclose(lars_w[1], sgd_w[0], rtol=1e-14)
    np.testing.assert_allclose(lars_v[1], sgd_v[0], rtol=1e-14)
    assert not np.allclose(lars_w[0], sgd_step([w[0]], [g[0]], [v[0]], lr=0.3, form="v")[0][0])


def test_nesterov_v_form_by_hand():
    # lambda = 0.001*1/1 = 0.001, lr = 1: v = 0.5*1 + 0.001*1 = 0.501; w = 1 - (0.5*0.501 + 0.001).
    new_w, new_v = lars_step([np.array([1.0])], [np.array([1.0])], [np.array([1.0])], lr=1.0, momentum=0.5,
                             nesterov=True)
    np.testing.assert_allclose(new_v[0], [0.501], rtol=1e-15)
    np.testing.assert_allclose(new_w[0], [1 - 0.2505 - 0.001], rtol=1e-15)


norms = st.floats(min_value=1e-30, max_value=1e30, allow_nan=False)


@given(w=norms, g=norms, scale=st.floats(min_value=1e-6, max_value=1e6), eta=st.floats(1e-5, 1.0))
def test_trust_ratio_is_invariant_to_rescaling_w_and_g_together_without_decay(w, g, scale, eta):
    assert trust_ratio(w * scale, g * scale, trust_coefficient=eta) == pytest.approx(
        trust_ratio(w, g, trust_coefficient=eta), rel=1e-12)


@settings(max_examples=60)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       wscale=st.sampled_from([0.0, 1e-300, 1e-30, 1.0]), gscale=st.sampled_from([0.0, 1e-300, 1e-30, 1.0]),
       decay=st.sampled_from([0.0, 1e-4]), eps=st.sampled_from([0.0, 1e-9]), clip=st.booleans())
def test_no_nan_or_inf_for_zero_or_tiny_inputs(shape, wscale, gscale, decay, eps, clip):
    rng = np.random.default_rng(1)
    w = [rng.normal(size=shape) * wscale]
    g = [rng.normal(size=shape) * gscale]
    new_w, new_v = lars_step(w, g, [np.zeros(shape)], lr=1.0, weight_decay=decay, eps=eps, trust_clip=clip)
    assert np.all(np.isfinite(new_w[0])) and np.all(np.isfinite(new_v[0]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(trust_coefficient=0.0), "trust_coefficient"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(eps=-1.0), "eps"),
])
def test_trust_ratio_rejects_bad_coefficients(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trust_ratio(1.0, 1.0, **{"trust_coefficient": 0.001, **kwargs})


def test_lars_step_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        lars_step([np.zeros(2)], [np.zeros(3)], [np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="adapt_mask"):
        lars_step([np.zeros(2)], [np.zeros(2)], [np.zeros(2)], lr=0.1, adapt_mask=[True, False])
    with pytest.raises(ValueError, match="momentum"):
        lars_step([np.zeros(2)], [np.zeros(2)], [np.zeros(2)], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="norms"):
        trust_ratio(-1.0, 1.0, trust_coefficient=0.001)
