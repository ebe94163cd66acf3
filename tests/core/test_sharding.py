"""One shuffle per epoch split over k workers (Goyal et al. 2017, §3 remark 4)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sharding import batches, epoch_indices, epoch_permutation


@settings(max_examples=100)
@given(n=st.integers(1, 500), k=st.integers(1, 16), seed=st.integers(0, 2**31), epoch=st.integers(0, 50),
       drop_last=st.booleans())
def test_shards_are_disjoint_equal_and_cover_the_dataset(n, k, seed, epoch, drop_last):
    if k > n:
        return
    shards = [epoch_indices(n, epoch=epoch, seed=seed, rank=r, world_size=k, drop_last=drop_last) for r in range(k)]
    sizes = {len(s) for s in shards}
    assert sizes == ({n // k} if drop_last else {-(-n // k)})
    union = np.concatenate(shards)
    if drop_last:
        assert len(np.unique(union)) == len(union) == n - n % k
    else:
        assert set(union.tolist()) == set(range(n))


def test_one_permutation_per_epoch_shared_by_all_ranks():
    a = epoch_permutation(1000, epoch=0, seed=7)
    assert not np.array_equal(a, epoch_permutation(1000, epoch=1, seed=7))
    np.testing.assert_array_equal(a, epoch_permutation(1000, epoch=0, seed=7))
    np.testing.assert_array_equal(epoch_indices(1000, epoch=0, seed=7, rank=1, world_size=4), a[1::4])


@given(k=st.integers(1, 8), n=st.integers(1, 16), seed=st.integers(0, 1000))
def test_k_workers_of_batch_n_read_what_one_worker_of_batch_kn_reads(k, n, seed):
    size = 997
    single = batches(epoch_indices(size, epoch=3, seed=seed, rank=0, world_size=1), k * n)
    per_rank = [batches(epoch_indices(size, epoch=3, seed=seed, rank=r, world_size=k), n) for r in range(k)]
    steps = min(len(single), *(len(b) for b in per_rank))
    for t in range(steps):
        together = np.sort(np.concatenate([b[t] for b in per_rank]))
        np.testing.assert_array_equal(together, np.sort(single[t]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(rank=2, world_size=2), "rank"), (dict(rank=-1, world_size=2), "rank"),
    (dict(rank=0, world_size=0), "world_size"), (dict(rank=0, world_size=11), "larger than dataset_size"),
    (dict(rank=0, world_size=1, seed=-3), "seed"), (dict(rank=0, world_size=1, epoch=1.5), "epoch"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        epoch_indices(10, **{"epoch": 0, "seed": 0, **kwargs})


def test_batches_drop_the_tail():
    assert batches(np.arange(10), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12), k=st.integers(1, 6), epoch=st.integers(0, 5))
def test_shard_level_split_gives_each_rank_its_own_shards_and_the_same_count(sizes, k, epoch):
    from harness.sharding import shard_level_indices

    shard_of = np.repeat(np.arange(len(sizes)), sizes)
    if len(sizes) < k:
        with pytest.raises(ValueError, match="every rank needs a shard"):
            shard_level_indices(shard_of, epoch=epoch, seed=0, consumed=0, rank=0, world_size=k)
        return
    parts = [shard_level_indices(shard_of, epoch=epoch, seed=0, consumed=0, rank=r, world_size=k) for r in range(k)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) >= min(sizes)
    shards = [set(shard_of[p].tolist()) for p in parts]
    assert all(not (a & b) for i, a in enumerate(shards) for b in shards[i + 1:])  # no shard read by two ranks
    union = np.concatenate(parts)
    assert len(np.unique(union)) == len(union)


def test_shard_level_split_resumes_after_the_consumed_prefix_and_changes_by_epoch():
    from harness.sharding import shard_level_indices

    shard_of = np.repeat(np.arange(6), 10)
    whole = shard_level_indices(shard_of, epoch=0, seed=1, consumed=0, rank=1, world_size=2)
    np.testing.assert_array_equal(shard_level_indices(shard_of, epoch=0, seed=1, consumed=8, rank=1, world_size=2),
                                  whole[4:])
    assert not np.array_equal(whole, shard_level_indices(shard_of, epoch=1, seed=1, consumed=0, rank=1, world_size=2))
