"""Elastic training (``harness train --elastic``): workers leave and join, and the recipe follows k.

Horovod's elastic driver (``horovodrun --min-np A --max-np B --host-discovery-script S``) restarts
the training function on every rank when a worker is lost or hosts are added or removed, after
restoring (lost worker) or keeping (host change) the state last committed, and broadcasting rank 0's
copy to every rank, new ones included (:class:`backends.elastic.EngineState`). Horovod rescales
nothing; this loop does, each time the function (re)starts with k' workers:

* the per-worker batch n stays, the global batch becomes k'n, and the recipe is resolved again for
  k' (its peak LR by the recipe's scaling rule, linear or square root; Goyal et al. §2.1);
* the schedule resumes at the same position in epochs, at step
  :func:`harness.elastic.resume_step` of the new recipe, so warmup, milestones and decay stay where
  they are in epochs; LARS applies momentum correction to the LR jump itself (Goyal eq. 10);
* the rest of the epoch, ``perm[consumed:]`` of the epoch's one shuffle, is split over the k'
  workers (:func:`harness.sharding.remaining_indices`): every image of the epoch is trained on once.

State is committed every ``commit_steps`` steps and at the end of each epoch (Horovod copies it to
host memory; ``HostsUpdatedInterrupt`` is raised there when hosts changed). Step records are
gathered to rank 0 and written at each commit, so steps that a failure rolls back are never
recorded; each carries ``sample_start``/``sample_end``, its slice of the epoch's permutation, from
which "every image once" is counted, ``step`` (the schedule's step in the recipe for its k, which can
go back when k grows: fewer, larger steps per epoch) and ``update`` (optimizer updates so far, monotonic). Each change of k writes a ``resize`` record (time, old and
new k, hosts, global batch, peak LR and the LR the next step uses).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from harness import sharding
from harness.elastic import resume_step
from harness.runtime.checkpoint import CHECKPOINT, save_checkpoint
from harness.runtime.config import RecipeSpec, RunConfig
from harness.runtime.engine import ElasticEngine
from harness.runtime.records import RECORDS, SUMMARY, RecordWriter, environment, placement

PACE_VARIABLE = "HARNESS_STEP_SLEEP_S"  # drills only: slow every step so hosts can change mid-run


class ElasticTrainer:
    """The epoch/step loop of an elastic run, restarted by Horovod on every change of workers.

    Args:
        engine: a started :class:`~harness.runtime.engine.ElasticEngine`, built with ``broadcast=False``.
        spec: where the recipe comes from; it is resolved again for every k.
        data: a :class:`harness.datasets.Dataset`.
        config: the run (``config.elastic`` is set; ``config.commit_steps`` steps between commits).
    """

    def __init__(self, engine: ElasticEngine, spec: RecipeSpec, data, config: RunConfig):
        self.engine, self.spec, self.data, self.config = engine, spec, data, config
        self.writer = RecordWriter(None)
        self.pace = float(os.environ.get(PACE_VARIABLE) or 0)
        self.started = time.time()

    def run(self) -> dict:
        """Train to the recipe's last epoch through every change of k; returns the summary (rank 0 writes it)."""
        position = {"epoch": 0, "consumed": 0, "step": 0, "update": 0, "world_size": None, "world_sizes": [],
                    "resizes": 0}
        try:
            return self.engine.elastic_run(self._train, self.engine.elastic_state(position))
        finally:
            self.writer.close()

    def _recipe(self):
        return self.spec.resolve(world_size=self.engine.size, dataset_size=len(self.data.y_train))

    def _train(self, state) -> dict:
        """What Horovod runs (again after each reset): rescale to the current k, then train."""
        engine, pos = self.engine, state.position
        engine.refresh_topology()
        recipe = self._recipe()
        step = resume_step(recipe, epoch=pos["epoch"], consumed=pos["consumed"])
        engine.rescale(recipe, step)
        self.recipe, self.pending, self.losses = recipe, [], []
        if engine.rank == 0 and self.writer.path is None:  # rank 0, or a rank that became rank 0
            self.writer = RecordWriter(self.config.out / RECORDS)
        self.placement = placement(engine)
        self._mark_start(pos, recipe, step)
        while pos["epoch"] < recipe.epochs:
            self._train_epoch(state)
            self._end_epoch(pos)
            pos["epoch"], pos["consumed"] = pos["epoch"] + 1, 0
            self._commit(state)
        return self._finish(pos)

    def _mark_start(self, pos: dict, recipe, step: int) -> None:
        old, k = pos["world_size"], self.engine.size
        base = {"rank": 0, "world_size": k, "time": time.time(), "update": pos["update"], "hosts": self.placement["hosts"],
                "ranks_per_host": self.placement["ranks_per_host"], "global_batch": recipe.global_batch,
                "peak_lr": recipe.peak_lr, "lr": self.engine.lr, "step": step, "epoch": pos["epoch"],
                "consumed": pos["consumed"]}
        if old is None:
            self.writer.write([{"kind": "run", **base, "elastic": True, "backend": self.engine.name,
                                "model": self.config.model, "dataset": self.data.name, "seed": self.config.seed,
                                "threads_per_rank": self.engine.threads, "recipe": recipe.to_dict(),
                                "per_worker_batch": recipe.per_worker_batch,
                                "horovod": self.engine.horovod_settings(), **self.placement, **environment()}])
        elif old != k:
            pos["resizes"] += 1
            self.writer.write([{"kind": "resize", **base, "old_world_size": old}])
        if old != k:
            pos["world_sizes"].append(k)
        pos["world_size"], pos["step"] = k, step

    def _train_epoch(self, state) -> None:
        r, engine, pos, x, y = self.recipe, self.engine, state.position, self.data.x_train, self.data.y_train
        shard = sharding.remaining_indices(len(y), epoch=pos["epoch"], seed=self.config.seed,
                                           consumed=pos["consumed"], rank=engine.rank, world_size=engine.size)
        for idx in sharding.batches(shard, r.per_worker_batch * r.accumulation_steps):
            lr, t0 = engine.lr, time.perf_counter()
            loss = engine.train_step([(x[part], y[part]) for part in np.split(idx, r.accumulation_steps)])
            elapsed = time.perf_counter() - t0
            self.pending.append({"kind": "step", "rank": engine.rank, "world_size": engine.size, "step": pos["step"],
                                 "update": pos["update"], "epoch": pos["epoch"], "loss": loss, "lr": lr, "step_time_s": elapsed,
                                 "images": len(idx), "sample_start": pos["consumed"],
                                 "sample_end": pos["consumed"] + r.global_batch, "time": time.time()})
            pos["step"], pos["update"], pos["consumed"] = pos["step"] + 1, pos["update"] + 1, pos["consumed"] + r.global_batch
            if self.pace:
                time.sleep(self.pace)
            if self.config.commit_steps and pos["step"] % self.config.commit_steps == 0:
                self._commit(state)

    def _commit(self, state) -> None:
        """Write every rank's steps since the last commit (rank 0), checkpoint if due, then commit."""
        engine, pos = self.engine, state.position
        engine.check_pending()
        for record in self.pending:
            record["loss"] = float(record["loss"])
        self.losses += [record["loss"] for record in self.pending]
        gathered = [s for rank_steps in engine.allgather_object(self.pending) for s in rank_steps]
        self.writer.write(sorted(gathered, key=lambda s: (s["update"], s["rank"])))
        self.pending = []
        every = self.config.checkpoint_steps
        if engine.rank == 0 and every and pos["step"] // every > pos.get("checkpointed", 0) // every:
            pos["checkpointed"] = pos["step"]
            meta = {"step": pos["step"], "epoch": pos["epoch"], "consumed": pos["consumed"], "elastic": True,
                    "world_size": engine.size, "recipe": self.recipe.to_dict(), "seed": self.config.seed,
                    "backend": engine.name, "model": self.config.model, "dataset": self.data.name}
            save_checkpoint(self.config.out / CHECKPOINT, meta, engine.get_state())
        state.commit()

    def _end_epoch(self, pos: dict) -> None:
        engine, x, y = self.engine, self.data.x_test, self.data.y_test
        rank_slice = slice(engine.rank, None, engine.size)
        loss_sum, correct, count = engine.allreduce_sum(engine.evaluate(x[rank_slice], y[rank_slice]))
        mine = [float(record["loss"]) for record in self.pending] + self.losses
        train = engine.allreduce_sum(np.array([sum(mine), len(mine)], dtype=np.float64))
        self.losses = []
        record = {"kind": "epoch", "rank": 0, "world_size": engine.size, "epoch": pos["epoch"],
                  "train_loss": float(train[0] / max(train[1], 1)), "test_loss": float(loss_sum / count),
                  "test_accuracy": float(correct / count), "wall_s": time.time() - self.started}
        self.last_epoch = record
        self.writer.write([record])

    def _finish(self, pos: dict) -> dict:
        engine, r = self.engine, self.recipe
        params = engine.flat_parameters()
        digests = engine.allgather_object(hashlib.sha256(params.tobytes()).hexdigest()[:16])
        summary = {
            "kind": "train", "elastic": True, "backend": engine.name, "model": self.config.model,
            "dataset": self.data.name, "recipe": r.name, "world_size": engine.size,
            "world_sizes": pos["world_sizes"], "resizes": pos["resizes"],
            "per_worker_batch": r.per_worker_batch, "accumulation_steps": r.accumulation_steps,
            "global_batch": r.global_batch, "peak_lr": r.peak_lr, "optimizer": r.optimizer, "epochs": pos["epoch"],
            "steps": pos["update"], "final_step": pos["step"], "threads_per_rank": engine.threads, "horovod": engine.horovod_settings(),
            **{key: self.placement[key] for key in ("device", "precision", "channels_last", "hosts", "ranks_per_host")},
            "test_accuracy": self.last_epoch["test_accuracy"], "test_loss": self.last_epoch["test_loss"],
            "train_loss": self.last_epoch["train_loss"], "parameters_sha256_per_rank": digests,
            "ranks_in_sync": len(set(digests)) == 1, "model_bytes": int(params.size * 4),
            "wall_time_s": time.time() - self.started, "complete": True,
        }
        if engine.rank == 0:
            (self.config.out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        return summary
