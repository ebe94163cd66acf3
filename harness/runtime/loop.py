"""The framework-free training loop: every rank runs it, rank 0 writes.

One step runner serves fixed-k and elastic training (:class:`StepLoop`): batches from a
:class:`~harness.runtime.source.DataSource` from a position in the epoch, prepared one step ahead,
fault injection (testing only), the engine's step timed to the end of its device work, step
records gathered from every rank, evaluation split over the ranks, the parameter digest and the
summary (:mod:`harness.runtime.schema`). What differs is small: :class:`Trainer` (fixed k) gathers
records and checkpoints on its own schedule and resumes from a checkpoint with the same LR, step and
shard order, so an interrupted and resumed run ends with the parameters of an uninterrupted one;
:class:`harness.runtime.elastic.ElasticTrainer` takes the rest of the epoch for a new k and commits
state with Horovod. The engine is anything that implements :class:`harness.runtime.engine.Engine`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

from harness.recipe import Recipe
from harness.runtime.checkpoint import CHECKPOINT, save_checkpoint
from harness.runtime.config import RunConfig
from harness.runtime.engine import Engine
from harness.runtime.faults import fail, is_peer_shutdown, parse_fault, poison, write_failure
from harness.runtime.records import RECORDS, SUMMARY, RecordWriter, environment, input_summary, placement, throughput
from harness.runtime.schema import EpochRecord, StepRecord, TrainSummary
from harness.runtime.source import DataSource, as_source


class StepLoop:
    """What every training loop shares: steps, records, evaluation, digest and summary.

    Args:
        engine: a started and built :class:`~harness.runtime.engine.Engine`.
        data: a :class:`~harness.runtime.source.DataSource`, or a :class:`harness.datasets.Dataset`
            (served by an :class:`~harness.runtime.source.ArraySource` with ``config.seed``).
        config: the run's :class:`~harness.runtime.config.RunConfig` (``config.out`` is the run directory).
    """

    opens_records = True  # rank 0 opens records.jsonl at the start (an elastic run: whoever is rank 0 later)

    def __init__(self, engine: Engine, data, config: RunConfig):
        self.engine, self.config, self.out = engine, config, config.out
        self.source: DataSource = as_source(data, seed=config.seed)
        self.writer = RecordWriter(self.out / RECORDS if engine.rank == 0 and self.opens_records else None)
        self.fault = parse_fault(os.environ.get("HARNESS_FAULT"))
        self.pending: list[StepRecord] = []  # this rank's steps since the last gather
        self.losses: list[float] = []  # this rank's losses of the current epoch already gathered
        self.step_records: list[dict] = []  # every rank's steps, gathered (for throughput)
        self.placement: dict = {}
        self.started = time.perf_counter()

    # -- steps -------------------------------------------------------------------------------------
    def steps(self, recipe: Recipe, epoch: int, *, consumed: int, step: int, stop: int) -> Iterator[StepRecord]:
        """Run this rank's steps of ``epoch`` from image ``consumed`` on, numbered from ``step``, until
        ``stop``; yield each step's record after the step (it is also kept for :meth:`gather`).

        Each step's batch is prepared (``engine.prepare``) before the previous step runs, so an engine
        can copy it to the device meanwhile; a ``nan`` fault poisons it first.
        """
        engine, pending, number = self.engine, None, step
        batches = iter(self.source.train_batches(epoch, consumed=consumed, rank=engine.rank, world_size=engine.size,
                                                 per_worker_batch=recipe.per_worker_batch,
                                                 accumulation_steps=recipe.accumulation_steps))
        while number < stop:
            t0 = time.perf_counter()
            batch = next(batches, None)  # blocks while the source decodes: the step's data wait
            wait = time.perf_counter() - t0
            if batch is None:
                break
            images = sum(len(y) for _, y in batch)
            prepared = (number, engine.prepare(poison(self.fault, engine.rank, number, batch)), wait, images)
            number += 1
            if pending is not None:
                yield self._one_step(recipe, epoch, *pending)
            pending = prepared
        if pending is not None:
            yield self._one_step(recipe, epoch, *pending)

    def _one_step(self, recipe: Recipe, epoch: int, step: int, batch, data_wait_s: float, images: int) -> StepRecord:
        engine = self.engine
        fail(self.fault, engine.rank, step)
        lr, t0 = engine.lr, time.perf_counter()
        loss = engine.train_step(batch)  # may stay on the device until the records are gathered
        engine.synchronize()  # the step's device work is done: step time, not launch time (async completion)
        record = StepRecord(rank=engine.rank, world_size=engine.size, step=step, epoch=epoch, loss=loss, lr=lr,
                            step_time_s=time.perf_counter() - t0, images=images, data_wait_s=data_wait_s)
        self.pending.append(record)
        return record

    def gather(self) -> None:
        """Read this rank's pending losses (one host sync), gather every rank's pending steps to rank 0
        and write them; a deferred engine check raises first (a collective: every rank calls it)."""
        self.engine.check_pending()
        for record in self.pending:
            record.loss = float(record.loss)
        self.losses += [record.loss for record in self.pending]
        mine = [record.to_dict() for record in self.pending]
        gathered = [s for rank_steps in self.engine.allgather_object(mine) for s in rank_steps]
        gathered.sort(key=lambda s: (s.get("update", s["step"]), s["rank"]))
        self.step_records += gathered
        self.writer.write(gathered)
        self.pending = []

    # -- epochs and the end ------------------------------------------------------------------------
    def evaluate(self, epoch: int) -> EpochRecord:
        """Evaluate on every rank's share of the test set, sum over ranks, write and print the epoch record.

        The training loss is the mean over every step of every rank in the epoch (pending ones too).
        """
        engine = self.engine
        totals = np.zeros(3)
        for x, y in self.source.eval_batches(rank=engine.rank, world_size=engine.size):
            totals += engine.evaluate(x, y)
        loss_sum, correct, count = engine.allreduce_sum(totals)
        losses = self.losses + [float(record.loss) for record in self.pending]
        train = engine.allreduce_sum(np.array([sum(losses), len(losses)], dtype=np.float64))
        self.losses = []
        record = EpochRecord(epoch=epoch, world_size=engine.size, train_loss=float(train[0] / max(train[1], 1)),
                             test_loss=float(loss_sum / max(count, 1)), test_accuracy=float(correct / max(count, 1)),
                             wall_s=time.perf_counter() - self.started)
        self.writer.write([record.to_dict()])
        if engine.rank == 0:
            print(f"epoch {epoch}: train loss {record.train_loss:.4f}, test loss {record.test_loss:.4f}, "
                  f"test accuracy {record.test_accuracy:.4f}", file=sys.stderr, flush=True)
        return record

    def run_record(self, kind: str, recipe: Recipe, **extra) -> dict:
        """The ``run`` (or ``resume``) record: recipe, flags, threads, placement, Horovod and versions."""
        engine, config = self.engine, self.config
        self.placement = placement(engine)
        return {"kind": kind, "rank": engine.rank, "world_size": engine.size, "backend": engine.name,
                "model": config.model, "dataset": self.source.name, "seed": config.seed,
                "threads_per_rank": engine.threads, "fp16_allreduce": config.fp16_allreduce,
                "nonfinite": config.nonfinite, "recipe": recipe.to_dict(), "global_batch": recipe.global_batch,
                "peak_lr": recipe.peak_lr, "per_worker_batch": recipe.per_worker_batch,
                "horovod": engine.horovod_settings(), **extra, **self.placement, **environment()}

    def input_account(self, skip: int) -> dict:
        """Every rank's data waits and pipeline statistics, summarised (a collective: every rank calls it)."""
        stats = getattr(self.source, "stats", None)
        pipelines = self.engine.allgather_object(stats() if stats else None)
        return input_summary(self.step_records, pipelines, skip=skip)

    def parameter_check(self) -> dict:
        """Hash every rank's parameters: data-parallel ranks must hold identical weights."""
        params = self.engine.flat_parameters()
        digests = self.engine.allgather_object(hashlib.sha256(params.tobytes()).hexdigest()[:16])
        if self.config.save_params and self.engine.rank == 0:
            np.save(self.out / "params.npy", params)
        return {"parameters_sha256_per_rank": digests, "ranks_in_sync": len(set(digests)) == 1,
                "model_bytes": int(params.size * 4)}

    def summary(self, recipe: Recipe, last: EpochRecord, *, steps: int, epochs: float, **extra) -> TrainSummary:
        """The run's :class:`~harness.runtime.schema.TrainSummary` (every rank computes it; rank 0 writes it)."""
        engine = self.engine
        timed = len(self.step_records) // max(engine.size, 1)
        skip = min(self.config.timing_skip, max(timed - 1, 0))
        images = recipe.per_worker_batch * recipe.accumulation_steps
        summary = TrainSummary(
            backend=engine.name, model=self.config.model, dataset=self.source.name, recipe=recipe.name,
            world_size=engine.size, per_worker_batch=recipe.per_worker_batch,
            accumulation_steps=recipe.accumulation_steps, global_batch=recipe.global_batch, peak_lr=recipe.peak_lr,
            optimizer=recipe.optimizer, epochs=epochs, steps=steps, threads_per_rank=engine.threads,
            horovod=engine.horovod_settings(),
            **{key: self.placement[key] for key in ("device", "precision", "channels_last", "hosts", "ranks_per_host")},
            test_accuracy=last.test_accuracy, test_loss=last.test_loss, train_loss=last.train_loss,
            nonfinite_policy=self.config.nonfinite, nonfinite_steps_skipped=engine.nonfinite_skipped,
            loss_scale_skips=engine.loss_scale_skips,
            throughput=throughput(self.step_records, images_per_step=images, skip=skip) if self.step_records else {},
            timing_skip=skip, input=self.input_account(skip), **self.parameter_check(),
            wall_time_s=time.perf_counter() - self.started, **extra)
        if engine.rank == 0:
            (self.out / SUMMARY).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        return summary


class Trainer(StepLoop):
    """The fixed-k epoch/step loop behind ``harness train``.

    Per epoch: the steps, every rank's records gathered to rank 0, evaluation. Checkpoints every N
    steps and/or epochs (:mod:`harness.runtime.checkpoint`); ``start`` continues from one.

    Args:
        engine: a started and built :class:`~harness.runtime.engine.Engine`.
        recipe: the validated recipe (k from Horovod).
        data: a :class:`~harness.runtime.source.DataSource` or a :class:`harness.datasets.Dataset`.
        config: the run's :class:`~harness.runtime.config.RunConfig`.
        start: where to begin: ``{"step", "epoch", "batch"}`` (from a checkpoint), or None.
    """

    def __init__(self, engine: Engine, recipe: Recipe, data, config: RunConfig, start: dict | None = None):
        super().__init__(engine, data, config)
        self.recipe = recipe
        self.start = start or {"step": 0, "epoch": 0, "batch": 0}
        self.step = self.start["step"]

    def run(self) -> dict:
        """Train, evaluate every epoch, write records and ``summary.json``; return the summary.

        A failure on this rank leaves ``failure-rank<R>.json`` in the run directory, then re-raises.
        """
        try:
            return self._run()
        except BaseException as exc:
            if not is_peer_shutdown(exc):  # the peer that stopped leaves its own marker
                write_failure(self.out, self.engine.rank, self.step, exc)
            raise
        finally:
            self.writer.close()

    @property
    def max_steps(self) -> int:
        """The step to stop at: ``max_steps`` or the recipe's total."""
        return self.config.stop_step(self.recipe)

    def _run(self) -> dict:
        r, stop = self.recipe, self.max_steps
        kind = "resume" if self.start["step"] else "run"
        self.writer.write([self.run_record(kind, r, start_step=self.start["step"])])
        progress = self._progress(stop)
        last = None
        for epoch in range(self.start["epoch"], int(np.ceil(stop / r.steps_per_epoch))):
            first = self.start["batch"] if epoch == self.start["epoch"] else 0
            for index, _ in enumerate(self.steps(r, epoch, consumed=first * r.global_batch, step=self.step,
                                                 stop=stop), start=first):
                self.step += 1
                progress.update(1)
                if self.config.checkpoint_steps and self.step % self.config.checkpoint_steps == 0:
                    self._checkpoint(epoch, index + 1)
            self.gather()
            last = self.evaluate(epoch)
            if self.config.checkpoint_epochs and (epoch + 1) % self.config.checkpoint_epochs == 0:
                self._checkpoint(epoch + 1, 0)
        progress.close()
        return self.summary(r, last, steps=self.step, epochs=self.step / r.steps_per_epoch,
                            resumed_from_step=self.start["step"]).to_dict()

    def _checkpoint(self, epoch: int, batch: int) -> None:
        """Rank 0 writes where the next step starts; all ranks hold the same weights."""
        self.engine.check_pending()  # a deferred check stops the run before the state is saved
        if self.engine.rank != 0:
            return
        meta = {"step": self.step, "epoch": epoch, "batch": batch, "recipe": self.recipe.to_dict(),
                "seed": self.config.seed, "backend": self.engine.name, "model": self.config.model,
                "world_size": self.engine.size, "dataset": self.source.name, "train_size": self.source.train_size}
        save_checkpoint(self.out / CHECKPOINT, meta, self.engine.get_state())

    def _progress(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total, initial=self.step, desc=f"train k={self.engine.size}", unit="step", file=sys.stderr,
                    disable=self.engine.rank != 0 or not sys.stderr.isatty() and not os.environ.get("HARNESS_PROGRESS"))
