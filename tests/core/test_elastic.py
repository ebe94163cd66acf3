"""Elastic training's numpy spec: the rest of an epoch re-split over k' workers, and where the schedule resumes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.elastic import resume_step
from harness.recipe import Recipe
from harness.sharding import batches, epoch_indices, epoch_permutation, remaining_indices


@settings(max_examples=150)
@given(n=st.integers(1, 600), k=st.integers(1, 12), k2=st.integers(1, 12), per=st.integers(1, 9),
       steps=st.integers(0, 40), seed=st.integers(0, 2**31), epoch=st.integers(0, 20))
def test_the_rest_of_an_epoch_is_partitioned_over_the_new_k(n, k, k2, per, steps, seed, epoch):
    if k * per > n or k2 > n:
        return
    done = min(steps, n // (k * per))
    first = [batches(epoch_indices(n, epoch=epoch, seed=seed, rank=r, world_size=k), per)[:done] for r in range(k)]
    consumed = done * k * per
    rest = [remaining_indices(n, epoch=epoch, seed=seed, consumed=consumed, rank=r, world_size=k2) for r in range(k2)]
    seen = np.concatenate([b.ravel() for b in first] + rest)
    assert len(np.unique(seen)) == len(seen)  # no image twice across the change
    perm = epoch_permutation(n, epoch=epoch, seed=seed)
    np.testing.assert_array_equal(np.sort(np.concatenate([b.ravel() for b in first])), np.sort(perm[:consumed]))
    assert len(seen) == n - (n - consumed) % k2  # only the last (N − consumed) mod k' images are left out
    assert {len(r) for r in rest} == {(n - consumed) // k2}


def test_no_change_of_k_is_the_ordinary_shard():
    for rank in range(3):
        np.testing.assert_array_equal(remaining_indices(1000, epoch=2, seed=5, consumed=0, rank=rank, world_size=3),
                                      epoch_indices(1000, epoch=2, seed=5, rank=rank, world_size=3))


@pytest.mark.parametrize("consumed", [-1, 1001, 2.0])
def test_consumed_outside_the_epoch_is_refused(consumed):
    with pytest.raises(ValueError, match="consumed"):
        remaining_indices(1000, epoch=0, seed=0, consumed=consumed, rank=0, world_size=2)


def recipe(k: int, **kw) -> Recipe:
    return Recipe(world_size=k, per_worker_batch=16, reference_batch=32, reference_lr=0.05, dataset_size=4096,
                  epochs=6.0, warmup_epochs=1.0, milestones_epochs=(4.5,), **kw)


@settings(max_examples=100)
@given(k=st.integers(1, 3), k2=st.integers(1, 3), epoch=st.integers(0, 5), steps=st.integers(0, 85))
def test_resume_step_keeps_the_position_in_epochs_and_ends_epochs_where_the_new_recipe_does(k, k2, epoch, steps):
    old, new = recipe(k), recipe(k2)
    consumed = min(steps, old.steps_per_epoch) * old.global_batch
    s = resume_step(new, epoch=epoch, consumed=consumed)
    remaining = (old.dataset_size - consumed) // new.global_batch  # what remaining_indices leaves for k'
    assert s + remaining == (epoch + 1) * new.steps_per_epoch  # the next epoch starts where k' places it
    assert abs(s / new.steps_per_epoch - (epoch + consumed / old.dataset_size)) <= 1 / new.steps_per_epoch


def test_lr_after_a_change_is_the_closed_form_for_the_new_global_batch():
    # 3 → 2 workers half-way through epoch 2 (linear scaling, gradual warmup over epoch 0, ÷10 at 4.5).
    three, two = recipe(3), recipe(2)
    consumed = 42 * three.global_batch  # 42 of 85 steps of epoch 2 done at kn = 48
    s = resume_step(two, epoch=2, consumed=consumed)
    assert (two.steps_per_epoch, s) == (128, 2 * 128 + 128 - (4096 - 2016) // 32)
    assert two.peak_lr == pytest.approx(0.05 * 32 / 32) and three.peak_lr == pytest.approx(0.05 * 48 / 32)
    assert two.lr(s) == pytest.approx(0.05)  # past warmup, before the drop: the new peak
    # the drop stays at epoch 4.5 in epochs, not in steps
    assert two.lr(int(4.5 * 128) - 1) == pytest.approx(0.05) and two.lr(int(4.5 * 128)) == pytest.approx(0.005)
    sqrt = recipe(2, scaling_rule="sqrt")
    assert sqrt.lr(resume_step(sqrt, epoch=2, consumed=consumed)) == pytest.approx(0.05 * np.sqrt(32 / 32))


def test_resume_step_refuses_a_position_outside_the_epoch():
    with pytest.raises(ValueError, match="consumed"):
        resume_step(recipe(2), epoch=0, consumed=5000)
    with pytest.raises(ValueError, match="epoch"):
        resume_step(recipe(2), epoch=-1, consumed=0)
