"""Schedules: closed forms, golden values from the papers, vectorisation and argument checks."""

import numpy as np
import pytest

from harness import schedules as S
from harness.recipe import goyal2017_resnet50

GOYAL = goyal2017_resnet50(8192)  # 156 steps per epoch on ImageNet-1k


def test_goyal_warmup_starts_at_0_1_and_reaches_3_2_exactly_at_end_of_epoch_5():
    spe = GOYAL.steps_per_epoch
    assert spe == 1_281_167 // 8192 == 156
    assert GOYAL.lr(0) == 0.1
    assert GOYAL.lr(5 * spe) == 3.2
    assert GOYAL.lr(5 * spe - 1) < 3.2


def test_goyal_warmup_grows_every_iteration_by_the_same_amount():
    steps = np.arange(0, 5 * 156 + 1)
    increments = np.diff(GOYAL.lr(steps))
    np.testing.assert_allclose(increments, (3.2 - 0.1) / 780, rtol=1e-9)


@pytest.mark.parametrize("epoch, lr", [(5, 3.2), (29, 3.2), (30, 0.32), (59, 0.32), (60, 0.032), (80, 0.0032), (89, 0.0032)])
def test_goyal_drops_by_ten_at_epochs_30_60_80(epoch, lr):
    assert GOYAL.lr(epoch * 156) == pytest.approx(lr, rel=1e-12)
    assert GOYAL.lr(30 * 156 - 1) == pytest.approx(3.2, rel=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 1.0), (25, 0.5625), (50, 0.25), (90, 0.01), (100, 0.0), (150, 0.0)])
def test_poly2_closed_form(step, expected):
    assert S.polynomial(1.0, 100, power=2.0)(step) == pytest.approx(expected, abs=1e-15)


def test_poly_with_end_lr_and_power_one():
    f = S.polynomial(2.0, 10, power=1.0, end_lr=0.5)
    np.testing.assert_allclose(f(np.array([0, 5, 10, 20])), [2.0, 1.25, 0.5, 0.5])


def test_cosine_half_way_is_the_mean():
    f = S.cosine(1.0, 100, end_lr=0.2)
    np.testing.assert_allclose(f(np.array([0, 50, 100, 200])), [1.0, 0.6, 0.2, 0.2], atol=1e-15)


def test_constant_warmup_holds_low_lr_then_jumps():
    f = S.join([S.constant(0.1), S.constant(3.2)], [780])
    np.testing.assert_array_equal(f(np.array([0, 779, 780, 1000])), [0.1, 0.1, 3.2, 3.2])


def test_join_gives_each_piece_its_own_step_count():
    f = S.join([S.linear_warmup(0.0, 1.0, 10), S.multistep(1.0, [5], 0.5), S.constant(7.0)], [10, 20])
    np.testing.assert_allclose(f(np.array([0, 5, 10, 14, 15, 19, 20, 99])), [0, 0.5, 1, 1, 0.5, 0.5, 7, 7])


def test_vectorised_matches_scalar_calls_and_keeps_shape():
    f = GOYAL.schedule()
    steps = np.array([[0, 100], [780, 5000]])
    out = f(steps)
    assert out.shape == (2, 2) and out.dtype == np.float64
    np.testing.assert_array_equal(out, [[f(0), f(100)], [f(780), f(5000)]])
    assert isinstance(f(3), float) and isinstance(f(np.int64(3)), float)


@pytest.mark.parametrize("call, match", [
    (lambda: S.constant(-1.0), "lr"),
    (lambda: S.linear_warmup(0.1, 3.2, 0), "warmup_steps"),
    (lambda: S.multistep(1.0, [10, 5]), "increasing"),
    (lambda: S.multistep(1.0, [10], factor=0.0), "factor"),
    (lambda: S.polynomial(1.0, 0), "decay_steps"),
    (lambda: S.polynomial(1.0, 10, power=0), "power"),
    (lambda: S.cosine(1.0, 10, end_lr=float("inf")), "end_lr"),
    (lambda: S.join([S.constant(1.0)], [3]), "join"),
    (lambda: S.join([S.constant(1.0)] * 3, [5, 5]), "increasing"),
    (lambda: S.constant(1.0)(-1), "step"),
    (lambda: S.constant(1.0)(1.5), "step"),
    (lambda: S.constant(1.0)("3"), "step"),
    (lambda: S.steps_per_epoch(100, 256), "no full global batch"),
    (lambda: S.epochs_to_steps(-1, 10), "epochs"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_epoch_helpers():
    assert S.steps_per_epoch(60_000, 512) == 117
    assert S.steps_per_epoch(60_000, 512, drop_last=False) == 118
    assert S.epochs_to_steps(2.5, 10) == 25
