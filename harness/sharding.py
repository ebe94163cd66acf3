"""Data sharding: one shuffle of the whole dataset per epoch, split over k workers.

Goyal et al. 2017 (arXiv 1706.02677, §3 remark 4, "use a single random shuffling of the training
data per epoch that is divided amongst all k workers"): every rank draws the same permutation
from ``(seed, epoch)`` and takes the strided shard ``perm[rank::k]``. Striding makes step t of
k workers with per-worker batch n read exactly the images that step t of one worker with batch
kn reads, so k×n and 1×kn runs see the same data (Goyal §2: equivalent up to BN).
"""

from __future__ import annotations

import numpy as np


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_rank(rank, world_size) -> tuple[int, int]:
    """(k, rank) as ints, with rank in [0, k)."""
    k = _check_int("world_size", world_size, 1)
    rank = _check_int("rank", rank, 0)
    if rank >= k:
        raise ValueError(f"rank must be in [0, {k}), got {rank}")
    return k, rank


def epoch_permutation(dataset_size: int, *, epoch: int, seed: int) -> np.ndarray:
    """The permutation of ``range(dataset_size)`` shared by every rank in ``epoch``.

    Returns:
        int64 array of shape (dataset_size,).

    Raises:
        ValueError: if an argument is not a non-negative integer (dataset_size >= 1).
    """
    n = _check_int("dataset_size", dataset_size, 1)
    rng = np.random.default_rng([_check_int("seed", seed, 0), _check_int("epoch", epoch, 0)])
    return rng.permutation(n).astype(np.int64)


def epoch_indices(dataset_size: int, *, epoch: int, seed: int, rank: int, world_size: int,
                  drop_last: bool = True) -> np.ndarray:
    """This rank's sample indices for ``epoch``: its shard of one shared shuffle.

    Args:
        dataset_size: N, number of training samples.
        epoch: epoch number (0-based); a new permutation each epoch.
        seed: shared seed; every rank must pass the same value.
        rank: this worker's rank in [0, world_size).
        world_size: k, number of workers.
        drop_last: drop the last ``N mod k`` samples of the permutation so shards are equal
            (``N // k`` each); otherwise wrap around to pad to ``ceil(N / k)`` each.

    Returns:
        int64 array of shape (N // k,) or (ceil(N / k),). Over all ranks the shards are
        disjoint and cover the permutation (all of it without ``drop_last``).

    Raises:
        ValueError: if ``rank`` is outside [0, world_size), ``world_size > dataset_size``, or an
            argument is not an integer in range.
    """
    k, rank = _check_rank(rank, world_size)
    perm = epoch_permutation(dataset_size, epoch=epoch, seed=seed)
    if k > perm.size:
        raise ValueError(f"world_size {k} is larger than dataset_size {perm.size}")
    if drop_last:
        perm = perm[: perm.size - perm.size % k]
    else:
        perm = np.concatenate([perm, perm[: (-perm.size) % k]])
    return perm[rank::k]


def remaining_indices(dataset_size: int, *, epoch: int, seed: int, consumed: int, rank: int,
                      world_size: int) -> np.ndarray:
    """This rank's share of what is left of ``epoch`` after ``consumed`` images, over k workers.

    Strided shards make the images that the first steps of an epoch read a prefix of the epoch's
    permutation (step t of k workers with batch n reads ``perm[t·kn:(t+1)·kn]``, whatever k was),
    so when k changes mid-epoch (elastic training) the rest, ``perm[consumed:]``, is split over the
    new k the same way: every image of the epoch is read once, by one worker, across the change.
    ``consumed = 0`` is :func:`epoch_indices` with ``drop_last``.

    Args:
        consumed: images of this epoch's permutation already trained on (a prefix), 0 <= consumed <= N.

    Returns:
        int64 array of shape ((N − consumed) // k,); over all ranks disjoint, and with
        ``perm[:consumed]`` covering the permutation but its last ``(N − consumed) mod k`` images.

    Raises:
        ValueError: as :func:`epoch_indices`, or ``consumed`` outside [0, N].
    """
    k, rank = _check_rank(rank, world_size)
    perm = epoch_permutation(dataset_size, epoch=epoch, seed=seed)
    start = _check_int("consumed", consumed, 0)
    if start > perm.size:
        raise ValueError(f"consumed must be <= dataset_size {perm.size}, got {start}")
    rest = perm[start:]
    return rest[: rest.size - rest.size % k][rank::k]


def batches(indices: np.ndarray, per_worker_batch: int) -> np.ndarray:
    """Split a shard into full batches of n, dropping the incomplete tail.

    Returns:
        int64 array of shape (len(indices) // n, n).

    Raises:
        ValueError: if ``per_worker_batch < 1``.
    """
    n = _check_int("per_worker_batch", per_worker_batch, 1)
    steps = len(indices) // n
    return np.asarray(indices[: steps * n], dtype=np.int64).reshape(steps, n)


def shard_order(num_shards: int, *, epoch: int, seed: int) -> np.ndarray:
    """The order of the archive shards in ``epoch``, shared by every rank: a permutation of ``range(num_shards)``."""
    n = _check_int("num_shards", num_shards, 1)
    rng = np.random.default_rng([_check_int("seed", seed, 0), _check_int("epoch", epoch, 0), 1])
    return rng.permutation(n).astype(np.int64)


def shard_level_indices(shard_of: np.ndarray, *, epoch: int, seed: int, consumed: int, rank: int,
                        world_size: int) -> np.ndarray:
    """This rank's samples of ``epoch`` when archive shards, not samples, are split over the k workers.

    For sharded archives (WebDataset layout) a rank reads only its own shards: the shards are
    permuted once per epoch (:func:`shard_order`) and rank r takes ``order[r::k]``; its samples are
    shuffled among themselves, seeded by ``(seed, epoch, rank)``. Every rank gets the same count, the
    smallest rank's (the rest of a larger rank's shards waits for a later epoch's split). Of that, the
    first ``consumed // k`` were trained on already (a resumed run at the same k continues exactly).

    Args:
        shard_of: (N,) int, the shard each training sample is in (0 <= shard < S).
        epoch, seed: as :func:`epoch_permutation`.
        consumed: images of this epoch already trained on by all ranks together (a multiple of k·n).
        rank, world_size: this rank and k (passed explicitly: Horovod sets no ``RANK``).

    Returns:
        int64 array of sample indices, shape (min_r(N_r) − consumed // k,) clipped at 0, where N_r is
        the number of samples in rank r's shards; disjoint over ranks.

    Raises:
        ValueError: fewer shards than ranks, or an argument out of range.
    """
    k, rank = _check_rank(rank, world_size)
    shard_of = np.asarray(shard_of, dtype=np.int64)
    num_shards = int(shard_of.max()) + 1 if shard_of.size else 0
    if num_shards < k:
        raise ValueError(f"{num_shards} shard(s) for {k} ranks: every rank needs a shard of its own")
    order = shard_order(num_shards, epoch=epoch, seed=seed)
    counts = np.bincount(shard_of, minlength=num_shards)
    per_rank = min(int(counts[order[r::k]].sum()) for r in range(k))
    mine = np.flatnonzero(np.isin(shard_of, order[rank::k]))
    mine = np.random.default_rng([seed, epoch, 2, rank]).permutation(mine)[:per_rank]
    start = _check_int("consumed", consumed, 0) // k
    return mine[min(start, per_rank):].astype(np.int64)
