"""Synthetic-data throughput benchmark: every rank times its own steps, timings gathered from all ranks.

Like Horovod's ``pytorch_synthetic_benchmark.py`` (a fixed random batch, warmup steps, iterations
of several batches, mean ± 1.96·std of images/s), but the total is the sum of every rank's own
measured rate rather than rank 0's rate multiplied by k.
"""

from __future__ import annotations

import os
import time

import numpy as np

from harness.datasets import synthetic
from harness.recipe import Recipe
from harness_cli.records import environment, throughput

HOROVOD_DEFAULTS = {"HOROVOD_FUSION_THRESHOLD": str(128 * 2**20), "HOROVOD_CYCLE_TIME": "1"}  # 0.28.1 source


def horovod_knobs() -> dict:
    """Fusion threshold (bytes) and cycle time (ms) in force: the environment, else 0.28.1's defaults."""
    knobs = {name: os.environ.get(name, default) for name, default in HOROVOD_DEFAULTS.items()}
    return {"fusion_threshold_bytes": int(knobs["HOROVOD_FUSION_THRESHOLD"]),
            "cycle_time_ms": float(knobs["HOROVOD_CYCLE_TIME"])}


def bench_recipe(world_size: int, per_worker_batch: int, steps: int) -> Recipe:
    """A constant-LR recipe sized for ``steps`` steps (throughput does not depend on the LR)."""
    return Recipe(name="throughput-bench", world_size=world_size, per_worker_batch=per_worker_batch,
                  reference_batch=per_worker_batch * world_size, dataset_size=per_worker_batch * world_size * steps,
                  epochs=1.0, warmup="none", decay="none", weight_decay=0.0)


def iteration_rates(step_records: list[dict], *, images_per_step: int, batches_per_iter: int) -> np.ndarray:
    """Total images/s of each iteration (``batches_per_iter`` steps), summed over ranks."""
    by_rank: dict[int, list[float]] = {}
    for record in sorted(step_records, key=lambda r: (r["rank"], r["step"])):
        by_rank.setdefault(record["rank"], []).append(record["step_time_s"])
    rates = []
    for times in by_rank.values():
        usable = len(times) // batches_per_iter * batches_per_iter
        per_iter = np.asarray(times[:usable]).reshape(-1, batches_per_iter).sum(axis=1)
        rates.append(images_per_step * batches_per_iter / per_iter)
    count = min(len(r) for r in rates)
    return np.sum([r[:count] for r in rates], axis=0)


def run_throughput(engine, *, model: str, per_worker_batch: int, warmup_steps: int, steps: int,
                   batches_per_iter: int, seed: int = 0) -> tuple[list[dict], dict]:
    """Measure training throughput on synthetic data on every rank.

    Args:
        engine: a started backend engine (torch or keras).
        model: model name (``resnet50`` uses 224×224×3 images and 1000 classes).
        per_worker_batch: n, images per rank per step.
        warmup_steps: untimed steps first (graph building, allocator warm-up).
        steps: timed steps per rank.
        batches_per_iter: steps per iteration for the mean ± CI over iterations.

    Returns:
        ``(step_records, summary)``: per-rank step records (every rank, gathered) and the summary
        (kind ``throughput``) with totals, per-worker rate, per-rank medians and spread, the CI,
        model bytes, Horovod knobs, hosts and versions. Only meaningful on rank 0.
    """
    shape, classes = ((3, 224, 224), 1000) if model == "resnet50" else ((1, 28, 28), 10)
    data = synthetic(train_size=per_worker_batch, test_size=1, input_shape=shape, num_classes=classes, seed=seed)
    recipe = bench_recipe(engine.size, per_worker_batch, warmup_steps + steps)
    engine.build(recipe, model=model, input_shape=shape, num_classes=classes, seed=seed)
    batch = [(data.x_train, data.y_train)]
    for _ in range(warmup_steps):
        engine.train_step(batch)
    mine = []
    for step in range(steps):
        t0 = time.perf_counter()
        engine.train_step(batch)
        mine.append({"kind": "step", "rank": engine.rank, "world_size": engine.size, "step": step,
                     "step_time_s": time.perf_counter() - t0, "images": per_worker_batch})
    records = [r for rank_records in engine.allgather_object(mine) for r in rank_records]
    rates = iteration_rates(records, images_per_step=per_worker_batch, batches_per_iter=batches_per_iter)
    env = environment()
    hosts = sorted(set(engine.allgather_object(env["host"])))
    summary = {
        "kind": "throughput", "backend": engine.name, "model": model, "dataset": "synthetic", "world_size": engine.size,
        "per_worker_batch": per_worker_batch, "global_batch": per_worker_batch * engine.size,
        "model_bytes": int(engine.flat_parameters().size * 4), "threads_per_rank": engine.threads,
        **throughput(records, images_per_step=per_worker_batch, skip=0),
        "iterations": int(len(rates)), "images_per_second_iter_mean": float(np.mean(rates)),
        "images_per_second_ci95": float(1.96 * np.std(rates)), "warmup_steps": warmup_steps,
        "horovod": {**horovod_knobs(), **engine.horovod_settings()}, "hosts": hosts, "python": env["python"], "versions": env["versions"],
    }
    return records, summary
