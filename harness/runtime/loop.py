"""The framework-free training loop behind ``harness train``: every rank runs it, rank 0 writes.

Per step: fault injection (testing only), the engine's step, a record. Per epoch: evaluation on the
test set split over ranks, every rank's step records gathered to rank 0. Checkpoints every N steps
and/or epochs (:mod:`harness.runtime.checkpoint`); ``resume`` continues from one with the same LR,
step and shard order, so an interrupted and resumed run ends with the parameters of an
uninterrupted one. The engine is anything that implements :class:`harness.runtime.engine.Engine`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

import numpy as np

from harness import sharding
from harness.recipe import Recipe
from harness.runtime.checkpoint import CHECKPOINT, save_checkpoint
from harness.runtime.config import RunConfig
from harness.runtime.engine import Engine
from harness.runtime.faults import fail, is_peer_shutdown, parse_fault, poison, write_failure
from harness.runtime.records import RECORDS, SUMMARY, RecordWriter, environment, placement, throughput


class Trainer:
    """The epoch/step loop.

    Args:
        engine: a started and built :class:`~harness.runtime.engine.Engine`.
        recipe: the validated recipe (k from Horovod).
        data: a :class:`harness.datasets.Dataset`.
        config: the run's :class:`~harness.runtime.config.RunConfig` (``config.out`` is the run directory).
        start: where to begin: ``{"step", "epoch", "batch"}`` (from a checkpoint), or None.
    """

    def __init__(self, engine: Engine, recipe: Recipe, data, config: RunConfig, start: dict | None = None):
        self.engine, self.recipe, self.data, self.config, self.out = engine, recipe, data, config, config.out
        self.writer = RecordWriter(self.out / RECORDS if engine.rank == 0 else None)
        self.base = {"rank": engine.rank, "world_size": engine.size}
        self.step_records: list[dict] = []  # every rank's steps, gathered each epoch
        self.start = start or {"step": 0, "epoch": 0, "batch": 0}
        self.step = self.start["step"]
        self.fault = parse_fault(os.environ.get("HARNESS_FAULT"))

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

    def _run(self) -> dict:
        r, engine = self.recipe, self.engine
        self._write_run_record()
        started, epoch_records = time.perf_counter(), []
        max_steps = self.max_steps
        progress = self._progress(max_steps)
        for epoch in range(self.start["epoch"], int(np.ceil(max_steps / r.steps_per_epoch))):
            epoch_steps = []
            first = self.start["batch"] if epoch == self.start["epoch"] else 0
            for index, batch in self._prefetched(epoch, first, max_steps):
                epoch_steps.append(self._one_step(epoch, batch))
                progress.update(1)
                if self.config.checkpoint_steps and self.step % self.config.checkpoint_steps == 0:
                    self._checkpoint(epoch, index + 1)
            epoch_records.append(self._end_epoch(epoch, epoch_steps, started))
            if self.config.checkpoint_epochs and (epoch + 1) % self.config.checkpoint_epochs == 0:
                self._checkpoint(epoch + 1, 0)
        progress.close()
        summary = {**self._summary(epoch_records, started), **self._parameter_check()}
        if engine.rank == 0:
            (self.out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    @property
    def max_steps(self) -> int:
        """The step to stop at: ``max_steps`` or the recipe's total."""
        return self.config.stop_step(self.recipe)

    def _prefetched(self, epoch: int, first: int, max_steps: int):
        """(batch index, prepared batch) for this epoch's remaining steps, each prepared one step ahead.

        ``engine.prepare`` of step t+1 is called before step t runs, so an engine can start copying it
        to the device while step t computes; a ``nan`` fault poisons the batch before it is prepared.
        """
        step, pending = self.step, None
        for index, batch in enumerate(self._epoch_batches(epoch)):
            if index < first:
                continue
            if step >= max_steps:
                break
            prepared = (index, self.engine.prepare(poison(self.fault, self.engine.rank, step, batch)))
            step += 1
            if pending is not None:
                yield pending
            pending = prepared
        if pending is not None:
            yield pending

    def _one_step(self, epoch: int, batch) -> dict:
        fail(self.fault, self.engine.rank, self.step)
        lr = self.engine.lr
        t0 = time.perf_counter()
        loss = self.engine.train_step(batch)  # may stay on the device until the epoch's records are written
        record = {"kind": "step", **self.base, "step": self.step, "epoch": epoch, "loss": loss, "lr": lr,
                  "step_time_s": time.perf_counter() - t0,
                  "images": self.recipe.per_worker_batch * self.recipe.accumulation_steps}
        self.step += 1
        return record

    def _write_run_record(self) -> None:
        r, config, engine = self.recipe, self.config, self.engine
        self.placement = placement(engine)
        kind = "resume" if self.start["step"] else "run"
        self.writer.write([{"kind": kind, **self.base, "backend": engine.name, "model": config.model,
                            "dataset": self.data.name, "seed": config.seed, "threads_per_rank": engine.threads,
                            "fp16_allreduce": config.fp16_allreduce, "nonfinite": config.nonfinite, "recipe": r.to_dict(),
                            "global_batch": r.global_batch, "peak_lr": r.peak_lr, "start_step": self.start["step"],
                            "horovod": engine.horovod_settings(), **self.placement, **environment()}])

    def _checkpoint(self, epoch: int, batch: int) -> None:
        """Rank 0 writes where the next step starts; all ranks hold the same weights."""
        self.engine.check_pending()  # a deferred non-finite verdict stops the run before it is saved
        if self.engine.rank != 0:
            return
        meta = {"step": self.step, "epoch": epoch, "batch": batch, "recipe": self.recipe.to_dict(),
                "seed": self.config.seed, "backend": self.engine.name, "model": self.config.model,
                "world_size": self.engine.size, "dataset": self.data.name, "train_size": len(self.data.y_train)}
        save_checkpoint(self.out / CHECKPOINT, meta, self.engine.get_state())

    def _progress(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total, initial=self.step, desc=f"train k={self.engine.size}", unit="step", file=sys.stderr,
                    disable=self.engine.rank != 0 or not sys.stderr.isatty() and not os.environ.get("HARNESS_PROGRESS"))

    def _epoch_batches(self, epoch: int):
        r, x, y = self.recipe, self.data.x_train, self.data.y_train
        shard = sharding.epoch_indices(len(y), epoch=epoch, seed=self.config.seed, rank=self.engine.rank,
                                       world_size=self.engine.size)
        for idx in sharding.batches(shard, r.per_worker_batch * r.accumulation_steps):
            yield [(x[part], y[part]) for part in np.split(idx, r.accumulation_steps)]

    def _end_epoch(self, epoch: int, epoch_steps: list[dict], started: float) -> dict:
        engine, x, y = self.engine, self.data.x_test, self.data.y_test
        engine.check_pending()
        for record in epoch_steps:  # the epoch's one read-out of the losses
            record["loss"] = float(record["loss"])
        losses = [record["loss"] for record in epoch_steps]
        rank_slice = slice(engine.rank, None, engine.size)
        loss_sum, correct, count = engine.allreduce_sum(engine.evaluate(x[rank_slice], y[rank_slice]))
        train = engine.allreduce_sum(np.array([sum(losses), len(losses)]))
        record = {"kind": "epoch", **self.base, "epoch": epoch, "train_loss": float(train[0] / max(train[1], 1)),
                  "test_loss": float(loss_sum / count), "test_accuracy": float(correct / count),
                  "wall_s": time.perf_counter() - started}
        gathered = [s for rank_steps in engine.allgather_object(epoch_steps) for s in rank_steps]
        self.step_records += gathered
        self.writer.write(gathered + [record])
        if engine.rank == 0:
            print(f"epoch {epoch}: train loss {record['train_loss']:.4f}, test loss {record['test_loss']:.4f}, "
                  f"test accuracy {record['test_accuracy']:.4f}", file=sys.stderr, flush=True)
        return record

    def _parameter_check(self) -> dict:
        """Hash every rank's parameters: data-parallel ranks must hold identical weights."""
        params = self.engine.flat_parameters()
        digests = self.engine.allgather_object(hashlib.sha256(params.tobytes()).hexdigest()[:16])
        if self.config.save_params and self.engine.rank == 0:
            np.save(self.out / "params.npy", params)
        return {"parameters_sha256_per_rank": digests, "ranks_in_sync": len(set(digests)) == 1,
                "model_bytes": int(params.size * 4)}

    def _summary(self, epoch_records: list[dict], started: float) -> dict:
        r, last = self.recipe, epoch_records[-1]
        timed = len(self.step_records) // max(self.engine.size, 1)
        skip = min(self.config.timing_skip, max(timed - 1, 0))
        return {
            "kind": "train", "backend": self.engine.name, "model": self.config.model, "dataset": self.data.name,
            "recipe": r.name, "world_size": self.engine.size, "per_worker_batch": r.per_worker_batch,
            "accumulation_steps": r.accumulation_steps, "global_batch": r.global_batch, "peak_lr": r.peak_lr,
            "optimizer": r.optimizer, "epochs": self.step / r.steps_per_epoch, "steps": self.step,
            "resumed_from_step": self.start["step"], "nonfinite_policy": self.config.nonfinite,
            "nonfinite_steps_skipped": self.engine.nonfinite_skipped,
            "threads_per_rank": self.engine.threads, "horovod": self.engine.horovod_settings(),
            "loss_scale_skips": getattr(self.engine, "loss_scale_skips", 0),
            **{key: self.placement[key] for key in ("device", "precision", "channels_last", "hosts", "ranks_per_host")},
            "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"], "train_loss": last["train_loss"],
            **throughput(self.step_records, images_per_step=r.per_worker_batch * r.accumulation_steps, skip=skip),
            "timing_skip": skip, "wall_time_s": time.perf_counter() - started, "complete": True,
        }
