"""The data seam: where the training loop takes its batches from.

The loop (:mod:`harness.runtime.loop`) asks a :class:`DataSource` for one rank's share of an epoch
*from a position*: ``consumed``, the number of images of the epoch's one shared shuffle already
trained on (a prefix of it, Goyal et al. 2017 §2.4: one shuffle per epoch split over the k
workers). That one integer is the whole data position: a checkpoint stores it, a resumed run starts
there, and an elastic run that changes k mid-epoch continues from it with the new k
(:func:`harness.sharding.remaining_indices`). :class:`ArraySource` serves in-memory arrays; a
streaming image pipeline implements the same protocol, prefetching in the background.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from harness import sharding

Batch = tuple[np.ndarray, np.ndarray]  # x (n, C, H, W) float32, y (n,) int64


class DataSource(Protocol):
    """Training and evaluation batches for one rank.

    Attributes:
        name: the dataset's name, for records.
        train_size: N, training images per epoch (the recipe's ``dataset_size``).
        input_shape: (C, H, W) of one image.
        num_classes: number of labels.
    """

    name: str
    train_size: int
    input_shape: tuple[int, int, int]
    num_classes: int

    def train_batches(self, epoch: int, *, consumed: int, rank: int, world_size: int, per_worker_batch: int,
                      accumulation_steps: int = 1) -> Iterator[list[Batch]]:
        """This rank's steps of ``epoch`` from image ``consumed`` of the epoch's shuffle on.

        Yields:
            One list per optimizer step: ``accumulation_steps`` micro-batches of ``per_worker_batch``
            images. Every rank yields the same number of steps, ``(N − consumed) // (k·n·a)``.
        """

    def eval_batches(self, *, rank: int, world_size: int) -> Iterator[Batch]:
        """This rank's share of the evaluation set, each image on exactly one rank (not padded)."""


class ArraySource:
    """A :class:`DataSource` over in-memory arrays (:class:`harness.datasets.Dataset`).

    Args:
        data: a :class:`harness.datasets.Dataset` (``x_train`` (N, C, H, W) float32, ``y_train`` (N,)
            int64, ``x_test``, ``y_test``, ``name``, ``input_shape``, ``num_classes``).
        seed: the shuffle's seed, the same on every rank.
        eval_batch: images per evaluation batch.

    Example::

        >>> from harness.datasets import synthetic
        >>> source = ArraySource(synthetic(train_size=64, test_size=8), seed=0)
        >>> steps = list(source.train_batches(0, consumed=0, rank=0, world_size=2, per_worker_batch=8))
        >>> len(steps), steps[0][0][0].shape
        (4, (8, 1, 28, 28))
    """

    def __init__(self, data, *, seed: int, eval_batch: int = 1000):
        self.data, self.seed, self.eval_batch = data, seed, eval_batch
        self.name, self.input_shape, self.num_classes = data.name, tuple(data.input_shape), data.num_classes
        self.train_size = len(data.y_train)

    def train_batches(self, epoch: int, *, consumed: int, rank: int, world_size: int, per_worker_batch: int,
                      accumulation_steps: int = 1) -> Iterator[list[Batch]]:
        """This rank's steps of ``epoch`` from ``consumed`` on (:class:`DataSource`)."""
        x, y = self.data.x_train, self.data.y_train
        shard = sharding.remaining_indices(len(y), epoch=epoch, seed=self.seed, consumed=consumed, rank=rank,
                                           world_size=world_size)
        for idx in sharding.batches(shard, per_worker_batch * accumulation_steps):
            yield [(x[part], y[part]) for part in np.split(idx, accumulation_steps)]

    def eval_batches(self, *, rank: int, world_size: int) -> Iterator[Batch]:
        """Rank r evaluates images r, r + k, r + 2k, ... of the test set, ``eval_batch`` at a time."""
        x, y = self.data.x_test[rank::world_size], self.data.y_test[rank::world_size]
        for start in range(0, len(y), self.eval_batch):
            yield x[start:start + self.eval_batch], y[start:start + self.eval_batch]


def as_source(data, *, seed: int) -> DataSource:
    """``data`` itself if it is a :class:`DataSource`, else an :class:`ArraySource` over it."""
    return data if hasattr(data, "train_batches") else ArraySource(data, seed=seed)
