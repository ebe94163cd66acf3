"""Synthetic-data throughput benchmark: every rank times its own steps, timings gathered from all ranks.

Like Horovod's ``pytorch_synthetic_benchmark.py`` (a fixed random batch, warmup steps, iterations
of several batches, mean ± 1.96·std of images/s), but the total is the sum of every rank's own
measured rate rather than rank 0's rate multiplied by k.
"""

from __future__ import annotations

import time

import numpy as np

from harness.datasets import synthetic
from harness.recipe import Recipe
from harness.runtime.errors import ConfigError
from harness.runtime.knobs import horovod_knobs
from harness.runtime.records import environment, placement, throughput


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


def run_throughput(engine, *, model, per_worker_batch: int, warmup_steps: int, steps: int,
                   batches_per_iter: int, seed: int = 0, input_shape: tuple[int, int, int] | None = None,
                   num_classes: int | None = None, peers: tuple[str, ...] = (),
                   data=None) -> tuple[list[dict], dict]:
    """Measure training throughput on every rank, on synthetic images or the first n of the user's own.

    Args:
        engine: a started backend engine (torch or keras).
        model: a built-in model name (``resnet50`` uses 3×224×224 images and 1000 classes, the others
            1×28×28 and 10) or a :class:`harness.runtime.models.UserModel`.
        per_worker_batch: n, images per rank per step.
        warmup_steps: untimed steps first (graph building, allocator warm-up).
        steps: timed steps per rank.
        batches_per_iter: steps per iteration for the mean ± CI over iterations.
        input_shape: (C, H, W) of the synthetic images, overriding the model's default.
        num_classes: number of synthetic labels, overriding the model's default.
        peers: baselines to measure right after, in the same processes (:mod:`benchmarks.peers`);
            the summary gets ``peers`` (their rates) and ``ratio_to_<peer>`` (harness / peer, per worker).
        data: a :class:`harness.datasets.Dataset` (e.g. from ``--dataset FILE.npz``): its image shape
            and class count replace the defaults, and its first n training images are the batch.

    Raises:
        ValueError: ``data`` has fewer than ``per_worker_batch`` training images, or ``input_shape`` /
            ``num_classes`` are given together with ``data``.

    Returns:
        ``(step_records, summary)``: per-rank step records (every rank, gathered) and the summary
        (kind ``throughput``) with totals, per-worker rate, per-rank medians and spread, the CI,
        model bytes, Horovod knobs, hosts and versions. Only meaningful on rank 0.
    """
    data, shape, classes = _bench_data(model, per_worker_batch, data=data, input_shape=input_shape,
                                       num_classes=num_classes, seed=seed)
    recipe = bench_recipe(engine.size, per_worker_batch, warmup_steps + steps)
    engine.build(recipe, model=model, input_shape=shape, num_classes=classes, seed=seed)
    batch = engine.prepare([(data.x_train[:per_worker_batch], data.y_train[:per_worker_batch])])  # on the device once, as a data pipeline would keep up
    for _ in range(warmup_steps):
        engine.train_step(batch)
    engine.synchronize()
    mine = []
    for step in range(steps):
        t0 = time.perf_counter()
        engine.train_step(batch)
        engine.synchronize()
        mine.append({"kind": "step", "rank": engine.rank, "world_size": engine.size, "step": step,
                     "step_time_s": time.perf_counter() - t0, "images": per_worker_batch})
    records = [r for rank_records in engine.allgather_object(mine) for r in rank_records]
    rates = iteration_rates(records, images_per_step=per_worker_batch, batches_per_iter=batches_per_iter)
    env = environment()
    where = placement(engine)
    summary = {
        "kind": "throughput", "backend": engine.name, "model": getattr(model, "spec", model), "dataset": data.name,
        "world_size": engine.size, "per_worker_batch": per_worker_batch, "global_batch": per_worker_batch * engine.size,
        "model_bytes": int(engine.flat_parameters().size * 4), "threads_per_rank": engine.threads,
        **throughput(records, images_per_step=per_worker_batch, skip=0),
        "iterations": int(len(rates)), "images_per_second_iter_mean": float(np.mean(rates)),
        "images_per_second_ci95": float(1.96 * np.std(rates)), "warmup_steps": warmup_steps,
        "horovod": {**horovod_knobs(), **engine.horovod_settings()},
        **{key: where[key] for key in ("hosts", "ranks_per_host", "device", "precision", "channels_last")},
        "python": env["python"], "versions": env["versions"],
    }
    if peers:
        from benchmarks.peers import run_peer

        raw = (data.x_train[:per_worker_batch], data.y_train[:per_worker_batch])
        summary["peers"] = {peer: run_peer(peer, engine, model, raw, num_classes=classes, warmup_steps=warmup_steps,
                                           steps=steps) for peer in peers}
        for peer, result in summary["peers"].items():
            summary[f"ratio_to_{peer}"] = summary["images_per_second_per_worker"] / result["images_per_second_per_worker"]
    return records, summary


def check_bench_data(data, per_worker_batch: int, *, input_shape=None, num_classes=None) -> None:
    """Refuse a user dataset the benchmark cannot time (call before any rank claims its output).

    Raises:
        ConfigError: (a ``ValueError``) fewer than ``per_worker_batch`` training images, or a synthetic
            shape or class count given as well.
    """
    if input_shape or num_classes:
        raise ConfigError("input_shape and num_classes describe synthetic data; dataset sets both itself",
                          fields=("input_shape", "num_classes", "dataset"))
    if len(data.y_train) < per_worker_batch:
        raise ConfigError(f"dataset has {len(data.y_train)} training images, fewer than per_worker_batch "
                          f"{per_worker_batch}", fields=("dataset", "per_worker_batch"))


def _bench_data(model, per_worker_batch: int, *, data, input_shape, num_classes, seed: int):
    """(dataset, (C, H, W), classes) for the benchmark: the user's data, or synthetic images of the
    model's default shape (3×224×224 and 1000 classes for resnet50, else 1×28×28 and 10)."""
    if data is not None:
        check_bench_data(data, per_worker_batch, input_shape=input_shape, num_classes=num_classes)
        return data, data.input_shape, data.num_classes
    shape, classes = ((3, 224, 224), 1000) if model == "resnet50" else ((1, 28, 28), 10)
    shape, classes = tuple(input_shape or shape), num_classes or classes
    return synthetic(train_size=per_worker_batch, test_size=1, input_shape=shape, num_classes=classes,
                     seed=seed), shape, classes
