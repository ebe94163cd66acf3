"""What every field of a training run's records and summary means: one place, written as JSON.

``records.jsonl`` holds one JSON object per record (:class:`StepRecord`, :class:`EpochRecord`, and the
``run``/``resize`` records of :mod:`harness.runtime.loop`); ``summary.json`` holds a
:class:`TrainSummary`. Fixed-k and elastic runs write the same schemas; fields that only an elastic
run has are None elsewhere and left out of the JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _present(obj) -> dict:
    """``obj``'s fields as a dict, without the optional fields that are None."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if getattr(obj, f.name) is not None or not f.metadata.get("optional")}


def _optional(default=None):
    return dataclasses.field(default=default, metadata={"optional": True})


@dataclasses.dataclass
class StepRecord:
    """One optimizer step of one rank.

    Attributes:
        rank: the rank that ran it; world_size: k at that step.
        step: the step in the LR schedule of the recipe for this k (an elastic run's can go back
            when k grows: fewer, larger steps per epoch).
        epoch: the epoch (0-based).
        loss: this rank's mean training loss over its micro-batches (a float once written; a 0-d
            device tensor until the loop's read-out).
        lr: the LR the step used (the recipe's ``lr(step)``).
        step_time_s: wall seconds from the start of the step to the end of its device work.
        images: images this rank trained on in the step (n · accumulation steps, less skipped bad images).
        data_wait_s: seconds this rank was blocked waiting for the step's batch from its data source
            (0 when it was ready: decoded ahead in the background).
        update: (elastic) optimizer updates before this one, monotonic over changes of k.
        sample_start, sample_end: (elastic) the step's slice of the epoch's permutation, all ranks.
        time: (elastic) Unix time at the end of the step.
    """

    rank: int
    world_size: int
    step: int
    epoch: int
    loss: Any
    lr: float
    step_time_s: float
    images: int
    data_wait_s: float = 0.0
    update: int | None = _optional()
    sample_start: int | None = _optional()
    sample_end: int | None = _optional()
    time: float | None = _optional()
    kind: str = "step"

    def to_dict(self) -> dict:
        """The record as written to ``records.jsonl``."""
        return _present(self)


@dataclasses.dataclass
class EpochRecord:
    """The end of an epoch, written by rank 0.

    Attributes:
        epoch: the epoch (0-based); world_size: k at its end.
        train_loss: mean training loss over every step of every rank in the epoch.
        test_loss: mean cross-entropy over the evaluation set (each image once, counts summed over ranks).
        test_accuracy: fraction correct on the evaluation set, in [0, 1].
        wall_s: seconds since the run (or this process's part of it) started.
    """

    epoch: int
    world_size: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    wall_s: float
    rank: int = 0
    kind: str = "epoch"

    def to_dict(self) -> dict:
        """The record as written to ``records.jsonl``."""
        return _present(self)


@dataclasses.dataclass
class TrainSummary:
    """``summary.json`` of a training run (kind ``train``).

    Attributes:
        backend, model, dataset, recipe: what ran (``recipe`` is the recipe's name).
        world_size: k at the end; per_worker_batch: n; accumulation_steps; global_batch: k·n·accumulation.
        peak_lr: the recipe's peak LR for the final k; optimizer: ``sgd`` or ``lars``.
        epochs: epochs trained (a fraction when stopped by ``max_steps``); steps: optimizer updates.
        threads_per_rank: intra-op threads; horovod: controller, NCCL and GPU operations.
        device, precision, channels_last, hosts, ranks_per_host: where it ran (rank 0's device record).
        test_accuracy, test_loss, train_loss: the last epoch's (:class:`EpochRecord`).
        nonfinite_policy, nonfinite_steps_skipped, loss_scale_skips: the non-finite gradient policy and
            steps skipped under it, and fp16 loss-scale overflow skips.
        images_per_second, images_per_second_per_worker, step_time_s_median, step_time_s_per_rank,
        step_time_s_spread, timed_steps: throughput from every rank's own step times
            (:func:`harness.runtime.records.throughput`), after ``timing_skip`` start-up steps per rank.
        input: the input side (:func:`harness.runtime.records.input_summary`): the slowest rank's
            data-wait share of step time, whether the run was input-bound, the pipeline's measured
            images/s beside the compute's, decode workers and skipped bad images.
        parameters_sha256_per_rank, ranks_in_sync: every rank's parameter digest, and whether they agree.
        model_bytes: parameters × 4 bytes.
        wall_time_s: seconds from the start of training to the summary.
        resumed_from_step: the step a resumed run started at (0 otherwise).
        elastic, world_sizes, resizes, final_step: (elastic) k after each change, the number of
            changes, and the schedule's step at the end.
    """

    backend: str
    model: str
    dataset: str
    recipe: str
    world_size: int
    per_worker_batch: int
    accumulation_steps: int
    global_batch: int
    peak_lr: float
    optimizer: str
    epochs: float
    steps: int
    threads_per_rank: int
    horovod: dict
    device: dict
    precision: str
    channels_last: bool
    hosts: list
    ranks_per_host: dict
    test_accuracy: float
    test_loss: float
    train_loss: float
    nonfinite_policy: str
    nonfinite_steps_skipped: int
    loss_scale_skips: int
    throughput: dict
    timing_skip: int
    input: dict
    parameters_sha256_per_rank: list
    ranks_in_sync: bool
    model_bytes: int
    wall_time_s: float
    resumed_from_step: int = 0
    elastic: bool | None = _optional()
    world_sizes: list | None = _optional()
    resizes: int | None = _optional()
    final_step: int | None = _optional()
    complete: bool = True
    kind: str = "train"

    def to_dict(self) -> dict:
        """The summary as written to ``summary.json`` (throughput's fields at the top level)."""
        data = _present(self)
        data.update(data.pop("throughput"))
        return data
