"""Scaling rules against the papers' numbers (Goyal et al. 2017 §2.1, Table 1)."""

import math

import pytest

from harness.scaling import scale_factor, scaled_lr


@pytest.mark.parametrize("global_batch, expected", [(256, 0.1), (1024, 0.4), (8192, 3.2), (32768, 12.8), (64, 0.025)])
def test_linear_rule_is_goyal_0_1_per_256(global_batch, expected):
    assert scaled_lr(0.1, global_batch) == pytest.approx(expected, rel=1e-15)


def test_sqrt_and_none_rules():
    assert scaled_lr(0.1, 1024, rule="sqrt") == pytest.approx(0.2, rel=1e-15)
    assert scaled_lr(0.1, 8192, rule="none") == 0.1
    assert scale_factor(512, reference_batch=128, rule="sqrt") == 2.0


def test_reference_batch_changes_the_ratio():
    assert scaled_lr(0.2, 4096, reference_batch=512) == pytest.approx(1.6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(reference_lr=0.1, global_batch=0), "global_batch"),
    (dict(reference_lr=0.1, global_batch=256.0), "global_batch"),
    (dict(reference_lr=0.1, global_batch=True), "global_batch"),
    (dict(reference_lr=0.1, global_batch=256, reference_batch=-1), "reference_batch"),
    (dict(reference_lr=0.1, global_batch=256, rule="cubic"), "rule"),
    (dict(reference_lr=-0.1, global_batch=256), "reference_lr"),
    (dict(reference_lr=math.nan, global_batch=256), "reference_lr"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaled_lr(**kwargs)
