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

import os
import time

from harness.elastic import resume_step
from harness.runtime.checkpoint import CHECKPOINT, save_checkpoint
from harness.runtime.config import RecipeSpec, RunConfig
from harness.runtime.engine import ElasticEngine
from harness.runtime.loop import StepLoop
from harness.runtime.records import RECORDS, RecordWriter

PACE_VARIABLE = "HARNESS_STEP_SLEEP_S"  # drills only: slow every step so hosts can change mid-run


class ElasticTrainer(StepLoop):
    """The epoch/step loop of an elastic run, restarted by Horovod on every change of workers.

    The steps, records, evaluation, digest and summary are :class:`~harness.runtime.loop.StepLoop`'s,
    as for a fixed-k run; this class says where a (re)start begins (the rest of the epoch for the new
    k) and when state is committed. A ``HARNESS_FAULT`` step is the LR schedule's step, as in the records.

    Args:
        engine: a started :class:`~harness.runtime.engine.ElasticEngine`, built with ``broadcast=False``.
        spec: where the recipe comes from; it is resolved again for every k.
        data: a :class:`~harness.runtime.source.DataSource` or a :class:`harness.datasets.Dataset`.
        config: the run (``config.elastic`` is set; ``config.commit_steps`` steps between commits).
    """

    opens_records = False  # opened by whichever rank is rank 0 after each (re)start

    def __init__(self, engine: ElasticEngine, spec: RecipeSpec, data, config: RunConfig):
        super().__init__(engine, data, config)
        self.spec = spec
        self.pace = float(os.environ.get(PACE_VARIABLE) or 0)

    def run(self) -> dict:
        """Train to the recipe's last epoch through every change of k; returns the summary (rank 0 writes it)."""
        position = {"epoch": 0, "consumed": 0, "step": 0, "update": 0, "world_size": None, "world_sizes": [],
                    "resizes": 0}
        try:
            return self.engine.elastic_run(self._train, self.engine.elastic_state(position))
        finally:
            self.writer.close()

    def _recipe(self):
        return self.spec.resolve(world_size=self.engine.size, dataset_size=self.source.train_size)

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
        self._mark_start(pos, recipe, step)
        while pos["epoch"] < recipe.epochs:
            self._train_epoch(state)
            self.last_epoch = self.evaluate(pos["epoch"])
            pos["epoch"], pos["consumed"] = pos["epoch"] + 1, 0
            self._commit(state)
        return self.summary(recipe, self.last_epoch, steps=pos["update"], epochs=pos["epoch"], elastic=True,
                            world_sizes=pos["world_sizes"], resizes=pos["resizes"], final_step=pos["step"]).to_dict()

    def _mark_start(self, pos: dict, recipe, step: int) -> None:
        old, k = pos["world_size"], self.engine.size
        run = self.run_record("run", recipe, elastic=True)  # gathers the placement: every rank calls it
        base = {"rank": 0, "world_size": k, "time": time.time(), "update": pos["update"], "hosts": self.placement["hosts"],
                "ranks_per_host": self.placement["ranks_per_host"], "global_batch": recipe.global_batch,
                "peak_lr": recipe.peak_lr, "lr": self.engine.lr, "step": step, "epoch": pos["epoch"],
                "consumed": pos["consumed"]}
        if old is None:
            self.writer.write([{**run, **base}])
        elif old != k:
            pos["resizes"] += 1
            self.writer.write([{"kind": "resize", **base, "old_world_size": old}])
        if old != k:
            pos["world_sizes"].append(k)
        pos["world_size"], pos["step"] = k, step

    def _train_epoch(self, state) -> None:
        r, pos = self.recipe, state.position
        stop = pos["step"] + (self.source.train_size - pos["consumed"]) // r.global_batch
        for record in self.steps(r, pos["epoch"], consumed=pos["consumed"], step=pos["step"], stop=stop):
            record.update, record.sample_start, record.time = pos["update"], pos["consumed"], time.time()
            record.sample_end = pos["consumed"] + r.global_batch
            pos["step"], pos["update"], pos["consumed"] = pos["step"] + 1, pos["update"] + 1, pos["consumed"] + r.global_batch
            if self.pace:
                time.sleep(self.pace)
            if self.config.commit_steps and pos["step"] % self.config.commit_steps == 0:
                self._commit(state)

    def _commit(self, state) -> None:
        """Write every rank's steps since the last commit (rank 0), checkpoint if due, then commit."""
        engine, pos = self.engine, state.position
        self.gather()
        every = self.config.checkpoint_steps
        if engine.rank == 0 and every and pos["step"] // every > pos.get("checkpointed", 0) // every:
            pos["checkpointed"] = pos["step"]
            meta = {"step": pos["step"], "epoch": pos["epoch"], "consumed": pos["consumed"], "elastic": True,
                    "world_size": engine.size, "recipe": self.recipe.to_dict(), "seed": self.config.seed,
                    "backend": engine.name, "model": self.config.model, "dataset": self.source.name}
            save_checkpoint(self.config.out / CHECKPOINT, meta, engine.get_state())
        state.commit()
