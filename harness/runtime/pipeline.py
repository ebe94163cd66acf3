"""The input pipeline: an image folder or sharded archives as a :class:`~harness.runtime.source.DataSource`.

Per rank, ``data_workers`` decode processes (a :class:`concurrent.futures.ProcessPoolExecutor`,
forked when the source is made, before the framework starts its threads) read and decode each step's
images ahead of the step, as uint8 (N, S, S, C) batches; the engine copies them to its device and
normalises them there (Goyal et al. §5.1: per-channel mean and std). What a rank reads is the data
seam's rule: an image folder is one shuffle per epoch split over the k ranks
(:func:`harness.sharding.remaining_indices`: every position exact, elastic changes of k too);
sharded archives are split over ranks at shard level (:func:`harness.sharding.shard_level_indices`:
a rank reads only its own shards). The window and flip of each sample come from
:mod:`harness.augment`, seeded by (seed, epoch, index): the same crops for any backend, worker count
or resume.

Decoded chunks come back through shared memory on Linux (:class:`SharedSlots`: anonymous ``memfd``
buffers the workers map once and write into; only labels and counts are pickled), elsewhere pickled
through the executor's pipe. Workers die with their rank (``PR_SET_PDEATHSIG`` on Linux) and ignore
Ctrl-C (the rank handles it and shuts them down), so a failed or interrupted run leaves no decoder
and no buffer behind.
"""

from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import itertools
import math
import mmap
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from harness import sharding
from harness.augment import normalization
from harness.runtime.errors import ConfigError
from harness.runtime.images import Augment, BadImageError, Catalog, decode

BAD_IMAGE_POLICIES = ("stop", "skip")


class DecodeWorkerDied(RuntimeError):
    """A decode worker process ended without a result (killed, out of memory, crashed in a decoder)."""


class Decoder:
    """Reads and decodes chunks of samples (in a worker process, or in the rank itself with 0 workers).

    Args:
        catalogs: ``{"train": Catalog, "val": Catalog}``.
        augment: the input recipe (:class:`harness.runtime.images.Augment`).
        seed: the run's seed (crops are seeded by seed, epoch and sample index).
        skip_bad: skip undecodable images (and name them in the result) instead of raising.
    """

    def __init__(self, catalogs: dict[str, Catalog], augment: Augment, *, seed: int, skip_bad: bool):
        self.catalogs, self.augment, self.seed, self.skip_bad = catalogs, augment, seed, skip_bad
        self.handles: dict = {}  # open archive shards, reused

    def chunk(self, split: str, epoch: int, indices: np.ndarray, out: np.ndarray | None = None):
        """Decode samples ``indices`` of ``split``.

        Args:
            out: where to write the images (uint8, at least (len(indices), S, S, C)); None: a new array.

        Returns:
            (x uint8 (m, S, S, C) or None when written to ``out``, y int64 (m,), skipped names, seconds
            spent); m < len(indices) only when images were skipped.

        Raises:
            BadImageError: an image that cannot be read or decoded, unless ``skip_bad``.
        """
        t0, catalog, labels, skipped = time.perf_counter(), self.catalogs[split], [], []
        x = np.empty(_chunk_shape(self.augment, len(indices)), np.uint8) if out is None else out
        for i in indices:
            i = int(i)
            name = catalog.sample_name(i)
            try:
                try:
                    data = catalog.read(i, self.handles)
                except OSError as exc:
                    raise BadImageError(name, exc.strerror or str(exc)) from None
                x[len(labels)] = self._decode(data, name, split == "train", epoch, i)
                labels.append(catalog.labels[i])
            except BadImageError:
                if not self.skip_bad:
                    raise
                skipped.append(name)
        return (x[:len(labels)] if out is None else None), np.asarray(labels, np.int64), skipped, \
            time.perf_counter() - t0

    def _decode(self, data, name, train, epoch, index):
        return decode(data, name, self.augment, train=train, seed=self.seed, epoch=epoch, index=index)


_WORKER: Decoder | None = None  # the decode worker's Decoder (set by _start_worker)


def _start_worker(decoder: Decoder, parent: int) -> None:
    """A decode worker's start: die with the rank, leave Ctrl-C to it, keep the decoder."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the executor's own shutdown is all there is
    if os.getppid() != parent:  # the rank died before prctl
        os._exit(1)
    _WORKER = decoder


def _chunk_shape(augment: Augment, count: int) -> tuple[int, int, int, int]:
    """(count, S, S, C): ``count`` decoded images."""
    return count, augment.image_size, augment.image_size, augment.channels


def _view(buffer, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images of ``shape`` viewing the start of a shared buffer (no copy)."""
    return np.frombuffer(buffer, np.uint8, math.prod(shape)).reshape(shape)


def _decode_chunk(split: str, epoch: int, indices: np.ndarray, slot: tuple[int, int, int, int] | None = None):
    """A worker's task: decode ``indices``, into the shared slot (parent pid, fd, id, bytes) when given."""
    out = None
    if slot is not None:
        parent, fd, key, nbytes = slot
        if key not in _MAPPED:  # mapped once per slot, then reused for every chunk it carries
            with open(f"/proc/{parent}/fd/{fd}", "r+b") as f:
                _MAPPED[key] = mmap.mmap(f.fileno(), nbytes)
        out = _view(_MAPPED[key], _chunk_shape(_WORKER.augment, len(indices)))
    return _WORKER.chunk(split, epoch, indices, out)


_MAPPED: dict[int, mmap.mmap] = {}  # a decode worker's view of the rank's shared slots, by slot id


class Slot(NamedTuple):
    """One shared buffer: its size, the rank's descriptor, an id unique in the rank, the rank's map."""

    nbytes: int
    fd: int
    key: int
    mapped: mmap.mmap


class SharedSlots:
    """Reusable shared-memory buffers for decoded chunks, on Linux: the rank makes an anonymous
    ``memfd`` per buffer, a worker maps it through ``/proc/<rank>/fd/<fd>`` and writes the chunk's
    images into it, the rank copies them out and reuses the buffer. Anonymous: nothing is left in
    ``/dev/shm`` when a rank dies. ``SharedSlots.supported()`` is False elsewhere (chunks are pickled).
    """

    _ids = itertools.count()

    def __init__(self):
        self.free: list[Slot] = []
        self.made: list[Slot] = []
        self.lock = threading.Lock()  # taken by the submitting thread, given back by the collector

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "memfd_create") and os.path.isdir(f"/proc/{os.getpid()}/fd")

    def take(self, nbytes: int) -> Slot:
        """A free buffer of at least ``nbytes`` bytes (a new one when none is)."""
        with self.lock:
            for j, slot in enumerate(self.free):
                if slot.nbytes >= nbytes:
                    return self.free.pop(j)
        nbytes = max(nbytes, mmap.PAGESIZE)
        fd = os.memfd_create("harness-decoded", os.MFD_CLOEXEC)
        os.ftruncate(fd, nbytes)
        slot = Slot(nbytes, fd, next(self._ids), mmap.mmap(fd, nbytes))
        self.made.append(slot)
        return slot

    def give(self, slot: Slot) -> None:
        with self.lock:
            self.free.append(slot)

    def close(self) -> None:
        """Unmap and close every buffer (the workers must be gone: their maps keep the memory alive)."""
        for slot in self.made:
            slot.mapped.close()
            os.close(slot.fd)
        self.free, self.made = [], []


def _noop() -> int:
    return os.getpid()


class ImageSource:
    """A :class:`~harness.runtime.source.DataSource` over an image folder or sharded archives.

    Args:
        train, val: the splits (:func:`harness.runtime.images.open_folder` or ``open_shards``).
        augment: the input recipe and image size.
        seed: the shuffle's and the crops' seed, the same on every rank.
        data_workers: decode processes for this rank (0: decode in the rank itself).
        bad_images: ``"stop"`` (an undecodable image ends the run, naming the file) or ``"skip"``
            (it is left out of its batch and counted).
        eval_batch: images per evaluation batch.
        prefetch_steps: steps decoded ahead of the one the rank trains on.

    Attributes:
        normalization: (mean, std) per channel, for the engine to apply on its device.

    Raises:
        ConfigError: a field out of range.

    Example::

        from harness.runtime.images import Augment, open_folder
        train, val = open_folder("/data/imagenet")
        source = ImageSource(train, val, augment=Augment(image_size=224), seed=0, data_workers=8)
        for step in source.train_batches(0, consumed=0, rank=hvd.rank(), world_size=hvd.size(),
                                         per_worker_batch=256):
            (x, y), = step  # x: uint8 (256, 224, 224, 3), y: int64 (256,)
    """

    def __init__(self, train: Catalog, val: Catalog, *, augment: Augment, seed: int, data_workers: int = 1,
                 bad_images: str = "stop", eval_batch: int = 250, prefetch_steps: int = 2):
        if bad_images not in BAD_IMAGE_POLICIES:
            raise ConfigError(f"data.bad_images must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {bad_images!r}",
                              fields=("data.bad_images",))
        if data_workers < 0:
            raise ConfigError(f"data.data_workers must be >= 0, got {data_workers}", fields=("data.data_workers",))
        self.train, self.val, self.augment, self.seed = train, val, augment, seed
        self.data_workers, self.bad_images = data_workers, bad_images
        self.eval_batch, self.prefetch_steps = eval_batch, prefetch_steps
        self.name, self.train_size = train.name, len(train)
        self.input_shape = (augment.channels, augment.image_size, augment.image_size)
        self.num_classes = len(train.classes) if train.classes else int(max(train.labels.max(), val.labels.max())) + 1
        self.normalization = normalization(augment.channels)
        self.decoder = Decoder({"train": train, "val": val}, augment, seed=seed, skip_bad=bad_images == "skip")
        self.images = 0  # training images decoded by this rank's workers
        self.decode_s = 0.0  # worker seconds spent on them
        self.skipped: list[str] = []
        self._pool = self._collector = None
        self._slots = SharedSlots() if data_workers and SharedSlots.supported() else None
        if data_workers:
            context = multiprocessing.get_context("fork")  # no re-import of the user's script (spawn would)
            self._pool = concurrent.futures.ProcessPoolExecutor(data_workers, mp_context=context,
                                                                initializer=_start_worker,
                                                                initargs=(self.decoder, os.getpid()))
            self._pool.submit(_noop).result()  # start the workers now, from this thread
            self._collector = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="harness-collect")

    def check_world_size(self, world_size: int) -> None:
        """Refuse a k that the shards cannot be split over (every rank needs a shard of its own).

        Raises:
            ConfigError: fewer training shards than ranks.
        """
        if self.train.sharded and len(self.train.files) < world_size:
            raise ConfigError(f"data.source: {len(self.train.files)} training shard(s) for {world_size} ranks: "
                              "every rank needs a shard of its own (write more, smaller shards)",
                              fields=("data.source",))

    # -- the DataSource protocol -----------------------------------------------------------------------
    def train_batches(self, epoch: int, *, consumed: int, rank: int, world_size: int, per_worker_batch: int,
                      accumulation_steps: int = 1) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """This rank's steps of ``epoch`` from image ``consumed`` on: lists of ``accumulation_steps``
        micro-batches, x uint8 (n, S, S, C), y int64 (n,) (fewer than n only where images were skipped).

        Raises:
            BadImageError: an undecodable image under ``bad_images="stop"`` (naming the file).
            DecodeWorkerDied: a decode worker process ended without a result.
        """
        if self.train.sharded:
            order = sharding.shard_level_indices(self.train.file_of, epoch=epoch, seed=self.seed, consumed=consumed,
                                                 rank=rank, world_size=world_size)
        else:
            order = sharding.remaining_indices(len(self.train), epoch=epoch, seed=self.seed, consumed=consumed,
                                               rank=rank, world_size=world_size)
        steps = sharding.batches(order, per_worker_batch * accumulation_steps)
        groups = ([np.array_split(part, self._chunks(per_worker_batch)) for part in np.split(idx, accumulation_steps)]
                  for idx in steps)
        for micro in self._decoded("train", epoch, groups):
            yield micro

    def eval_batches(self, *, rank: int, world_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This rank's share of the validation set, each image on one rank: images r, r + k, ... of a
        folder; shards r, r + k, ... of archives."""
        if self.val.sharded:
            mine = np.flatnonzero(self.val.file_of % world_size == rank)
        else:
            mine = np.arange(rank, len(self.val), world_size)
        groups = ([np.array_split(mine[s:s + self.eval_batch], self._chunks(self.eval_batch))]
                  for s in range(0, len(mine), self.eval_batch))
        for (x, y), in self._decoded("val", 0, groups):
            yield x, y

    # -- decoding ahead ----------------------------------------------------------------------------------
    def _chunks(self, batch: int) -> int:
        """Pieces a batch is cut into: one per worker, so all of them decode the next batch at once."""
        return max(1, min(batch, self.data_workers))

    def _decoded(self, split: str, epoch: int, groups) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """Each group (a step: micro-batches of index chunks) decoded, in order, ``prefetch_steps`` ahead.

        With workers, a collector thread assembles each step as soon as its chunks are decoded (the copy
        out of shared memory included), so the consumer waits only when the workers are behind.
        """
        pending = collections.deque()
        for group in groups:
            step = [[self._submit(split, epoch, chunk) for chunk in micro if len(chunk)] for micro in group]
            pending.append(self._collector.submit(self._collect, split, step) if self._collector else
                           self._collect(split, step))
            if len(pending) > self.prefetch_steps:
                yield self._assembled(pending.popleft())
        while pending:
            yield self._assembled(pending.popleft())

    @staticmethod
    def _assembled(step):
        return step.result() if isinstance(step, concurrent.futures.Future) else step

    def _submit(self, split, epoch, chunk):
        if self._pool is None:
            return self.decoder.chunk(split, epoch, chunk)  # decoded now, in this process
        slot = None if self._slots is None else self._slots.take(math.prod(_chunk_shape(self.augment, len(chunk))))
        try:
            future = self._pool.submit(_decode_chunk, split, epoch, chunk,
                                       None if slot is None else (os.getpid(), slot.fd, slot.key, slot.nbytes))
        except concurrent.futures.process.BrokenProcessPool:
            raise self._died() from None
        future.slot = slot
        return future

    def _result(self, f):
        """A chunk's (x, y, skipped, seconds, slot): x views its shared slot (give the slot back once x is
        copied) or is the worker's own array (slot None)."""
        if not isinstance(f, concurrent.futures.Future):
            return (*f, None)
        slot = getattr(f, "slot", None)
        try:
            x, y, skipped, seconds = f.result()
        except BaseException:
            if slot is not None and f.done():  # the worker is done with it
                self._slots.give(slot)
            raise
        if slot is not None:
            x = _view(slot.mapped, _chunk_shape(self.augment, len(y)))
        return x, y, skipped, seconds, slot

    def _died(self) -> DecodeWorkerDied:
        return DecodeWorkerDied(f"a decode worker of this rank ended without a result (killed, or out of memory: "
                                f"{self.data_workers} workers of {self.augment.image_size}-pixel crops; "
                                "data.data_workers sets how many)")

    def _collect(self, split: str, step) -> list[tuple[np.ndarray, np.ndarray]]:
        micro = []
        for futures in step:
            try:
                parts = [self._result(f) for f in futures]
            except concurrent.futures.process.BrokenProcessPool:
                raise self._died() from None
            x = np.empty((sum(len(p[1]) for p in parts), *parts[0][0].shape[1:]), np.uint8)
            y = np.concatenate([p[1] for p in parts])
            start = 0
            for part, labels, _, _, slot in parts:  # one copy, out of the shared slots, which are then free
                x[start:start + len(labels)] = part
                start += len(labels)
                if slot is not None:
                    self._slots.give(slot)
            for _, _, skipped, seconds, _ in parts:
                self.skipped += skipped
                if split == "train":
                    self.decode_s += seconds
            if split == "train":
                self.images += len(y)
            if len(y) == 0:
                raise BadImageError(", ".join(self.skipped[-3:]), "every image of a batch was unreadable")
            micro.append((x, y))
        return micro

    # -- the run's account -------------------------------------------------------------------------------
    def stats(self) -> dict:
        """This rank's pipeline: workers, training images decoded, their decode rate and the skipped images.

        ``pipeline_images_per_s`` is what the workers delivered per second of their own time, times the
        number of workers (images/s this rank's pipeline can feed when it never waits for the step).
        """
        rate = self.images / self.decode_s * max(self.data_workers, 1) if self.decode_s else None
        return {"data_workers": self.data_workers, "images_decoded": self.images, "decode_s": self.decode_s,
                "pipeline_images_per_s": rate, "bad_images_skipped": len(self.skipped),
                "bad_images": self.skipped[:20]}

    def worker_pids(self) -> list[int]:
        """The process ids of this rank's decode workers (none with 0 workers, or once closed)."""
        return sorted(self._pool._processes) if self._pool is not None else []

    def close(self) -> None:
        """Stop the decode workers (queued work is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._collector is not None:  # its queued steps fail fast now that the pool is gone
            self._collector.shutdown(wait=True, cancel_futures=True)
            self._collector = None
        if self._slots is not None:
            self._slots.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def default_data_workers(threads: int, *, gpu: bool = False) -> int:
    """Decode processes per rank: the rank's share of its host's CPUs minus its compute threads, at least 1.

    On a GPU the model computes on the device and the rank needs one core to drive it, so its share
    less one (16 cores and 8 GPU ranks: 1 decode worker each; 16 cores and 1 GPU rank: 15). The share
    is the CPUs this process may run on (its affinity) over the ranks on this host (the launcher's
    local size).
    """
    from harness.runtime.records import local_size, usable_cpus

    return max(1, usable_cpus() // local_size() - (1 if gpu else threads))


