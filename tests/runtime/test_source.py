"""The data seam's position: the steps a source yields from ``consumed`` are the tail of the epoch's steps."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.datasets import synthetic
from harness.runtime.source import ArraySource


@settings(max_examples=40, deadline=None)
@given(world_size=st.integers(1, 4), n=st.integers(1, 5), accumulation=st.integers(1, 3), data=st.data())
def test_resuming_at_a_step_boundary_yields_the_rest_of_the_epoch(world_size, n, accumulation, data):
    source = ArraySource(synthetic(train_size=97, test_size=10, input_shape=(1, 2, 2), seed=1), seed=3)
    steps = 97 // (world_size * n * accumulation)
    done = data.draw(st.integers(0, steps))
    for rank in range(world_size):
        args = dict(rank=rank, world_size=world_size, per_worker_batch=n, accumulation_steps=accumulation)
        whole = list(source.train_batches(2, consumed=0, **args))
        tail = list(source.train_batches(2, consumed=done * world_size * n * accumulation, **args))
        assert len(whole) == steps and len(tail) == steps - done
        for a, b in zip(whole[done:], tail):
            assert len(a) == len(b) == accumulation
            for (xa, ya), (xb, yb) in zip(a, b):
                np.testing.assert_array_equal(xa, xb)
                np.testing.assert_array_equal(ya, yb)


def test_evaluation_covers_every_image_once_over_the_ranks():
    data = synthetic(train_size=8, test_size=23, input_shape=(1, 2, 2), seed=0)
    source = ArraySource(data, seed=0, eval_batch=4)
    labels = [y for rank in range(3) for _, y in source.eval_batches(rank=rank, world_size=3)]
    assert sum(len(y) for y in labels) == 23
    assert sorted(np.concatenate(labels).tolist()) == sorted(data.y_test.tolist())
