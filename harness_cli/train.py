"""``harness train``: the recipe on k Horovod workers, with records and a summary.

Framework-free loop over a backend engine (:class:`backends.torch.engine.TorchEngine` or the
Keras one). Runs alone (k = 1) or under ``horovodrun``/``mpirun``; k comes from Horovod.
Data: one shuffle per epoch split over the k workers (:mod:`harness.sharding`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from harness import sharding
from harness.datasets import load_fashion_mnist, synthetic
from harness.recipe import PRESETS, Recipe
from harness_cli.errors import UsageError
from harness_cli.records import RECORDS, SUMMARY, RecordWriter, environment, prepare_out_dir, throughput

BACKENDS = ("torch", "keras")
DATASETS = ("fashion-mnist", "synthetic")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``harness train`` (shared with experiments that launch it)."""
    p.add_argument("--backend", choices=BACKENDS, default="torch")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=sorted(PRESETS), default="fashion-mnist-goyal",
                     help="named recipe (default: fashion-mnist-goyal)")
    src.add_argument("--recipe", metavar="FILE", help="recipe file (.json, .yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a recipe field, e.g. --set warmup=constant (repeatable)")
    p.add_argument("--model", default="resnet-small", help="resnet-small, resnet50 or mlp")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--data-dir", help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--train-size", type=int, help="use the first N training images (default: all)")
    p.add_argument("--test-size", type=int, help="evaluate on the first N test images (default: all)")
    p.add_argument("--per-worker-batch", type=int, help="n, images per worker per step (default: the recipe's)")
    p.add_argument("--epochs", type=float, help="training epochs (default: the recipe's)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (records stay valid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="intra-op threads per rank (default: cores / local ranks)")
    p.add_argument("--fp16-allreduce", action="store_true", help="compress gradients to fp16 for allreduce")
    p.add_argument("--timing-skip", type=int, default=5, help="steps per rank left out of timings (start-up)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="allow an --out directory that has files")
    p.add_argument("--save-params", action="store_true",
                   help="write the final parameters, flattened, to DIR/params.npy (float64)")


def _parse_value(text: str):
    """A ``--set`` value: int, then float (YAML 1.1 reads ``5e-4`` as a string), then YAML."""
    import yaml

    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve_recipe(args: argparse.Namespace, *, world_size: int, dataset_size: int) -> Recipe:
    """The recipe from ``--preset``/``--recipe``, ``--set`` overrides, and the launch (k, n, N).

    Raises:
        UsageError: unreadable file, malformed ``--set``, or a field the recipe rejects.
    """
    try:
        base = Recipe.load(args.recipe) if args.recipe else PRESETS[args.preset]()
    except OSError as exc:
        raise UsageError(f"cannot read recipe {args.recipe}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"recipe {args.recipe or args.preset}: {exc}") from None
    changes = {"world_size": world_size, "dataset_size": dataset_size}
    if args.per_worker_batch is not None:
        changes["per_worker_batch"] = args.per_worker_batch
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    for item in args.overrides:
        field, eq, value = item.partition("=")
        if not eq or not field:
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        changes[field.strip()] = _parse_value(value)
    try:
        return Recipe.from_dict({**base.to_dict(), **changes})
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def load_dataset(args: argparse.Namespace):
    """The dataset named by ``--dataset``.

    Raises:
        UsageError: Fashion-MNIST missing or corrupt.
    """
    if args.dataset == "synthetic":
        shape = (3, 224, 224) if args.model == "resnet50" else (1, 28, 28)
        return synthetic(train_size=4096 if args.model != "resnet50" else 512, test_size=256,
                         input_shape=shape, num_classes=1000 if args.model == "resnet50" else 10, seed=args.seed)
    try:
        data = load_fashion_mnist(args.data_dir)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return dataclasses.replace(data, x_train=data.x_train[:args.train_size], y_train=data.y_train[:args.train_size],
                               x_test=data.x_test[:args.test_size], y_test=data.y_test[:args.test_size])


def make_engine(backend: str, threads: int | None):
    """Import and start the backend's engine (initialises Horovod)."""
    if backend == "torch":
        from backends.torch.engine import TorchEngine

        return TorchEngine(threads=threads)
    from backends.keras.engine import KerasEngine

    return KerasEngine(threads=threads)


def _default_threads() -> int:
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("HOROVOD_LOCAL_SIZE") or 1)
    return max(1, (os.cpu_count() or 1) // local)


def _check_flags(args: argparse.Namespace) -> None:
    for name in ("per_worker_batch", "max_steps", "threads", "train_size", "test_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.timing_skip < 0:
        raise UsageError(f"--timing-skip must be >= 0, got {args.timing_skip}")


def run_train(args: argparse.Namespace) -> int:
    """``harness train``: returns the exit code; user mistakes raise :class:`UsageError`."""
    _check_flags(args)
    data = load_dataset(args)
    engine = make_engine(args.backend, args.threads or _default_threads())
    recipe = resolve_recipe(args, world_size=engine.size, dataset_size=len(data.y_train))
    out = Path(args.out)
    problem = engine.broadcast_object(prepare_out_dir(out, args.overwrite) if engine.rank == 0 else None)
    if problem:
        raise UsageError(problem)
    try:
        engine.build(recipe, model=args.model, input_shape=data.input_shape, num_classes=data.num_classes,
                     seed=args.seed, fp16_allreduce=args.fp16_allreduce)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    summary = Trainer(engine, recipe, data, args, out).run()
    if engine.rank == 0:
        print(f"test accuracy {summary['test_accuracy']:.4f} | {summary['images_per_second']:.0f} images/s "
              f"on {summary['world_size']} workers | {out / SUMMARY}")
    return 0


class Trainer:
    """The epoch/step loop; every rank runs it, rank 0 writes."""

    def __init__(self, engine, recipe: Recipe, data, args: argparse.Namespace, out: Path):
        self.engine, self.recipe, self.data, self.args, self.out = engine, recipe, data, args, out
        self.writer = RecordWriter(out / RECORDS if engine.rank == 0 else None)
        self.base = {"rank": engine.rank, "world_size": engine.size}
        self.step_records: list[dict] = []  # every rank's steps, gathered each epoch

    def run(self) -> dict:
        """Train, evaluate every epoch, write records and ``summary.json``; return the summary."""
        r, args, engine = self.recipe, self.args, self.engine
        self.writer.write([{"kind": "run", **self.base, "backend": engine.name, "model": args.model,
                            "dataset": self.data.name, "seed": args.seed, "threads_per_rank": engine.threads,
                            "fp16_allreduce": args.fp16_allreduce, "recipe": r.to_dict(),
                            "global_batch": r.global_batch, "peak_lr": r.peak_lr,
                            "horovod": engine.horovod_settings(),
                            "hosts": sorted(set(engine.allgather_object(environment()["host"]))), **environment()}])
        step, started, epoch_records = 0, time.perf_counter(), []
        max_steps = min(args.max_steps or r.total_steps, r.total_steps)
        epochs = int(np.ceil(max_steps / r.steps_per_epoch))
        progress = self._progress(max_steps)
        for epoch in range(epochs):
            epoch_steps, losses = [], []
            for batch in self._epoch_batches(epoch):
                if step >= max_steps:
                    break
                lr = engine.lr
                t0 = time.perf_counter()
                loss = engine.train_step(batch)
                elapsed = time.perf_counter() - t0
                epoch_steps.append({"kind": "step", **self.base, "step": step, "epoch": epoch, "loss": loss,
                                    "lr": lr, "step_time_s": elapsed, "images": r.per_worker_batch * r.accumulation_steps})
                losses.append(loss)
                step += 1
                progress.update(1)
                progress.set_postfix(epoch=epoch, loss=f"{loss:.3f}", lr=f"{lr:.4f}")
            epoch_records.append(self._end_epoch(epoch, epoch_steps, losses, started))
        progress.close()
        summary = {**self._summary(epoch_records, step, started), **self._parameter_check()}
        if engine.rank == 0:
            (self.out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        self.writer.close()
        return summary

    def _progress(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total, desc=f"train k={self.engine.size}", unit="step", file=sys.stderr,
                    disable=self.engine.rank != 0 or not sys.stderr.isatty() and not os.environ.get("HARNESS_PROGRESS"))

    def _epoch_batches(self, epoch: int):
        r, x, y = self.recipe, self.data.x_train, self.data.y_train
        shard = sharding.epoch_indices(len(y), epoch=epoch, seed=self.args.seed, rank=self.engine.rank,
                                       world_size=self.engine.size)
        for idx in sharding.batches(shard, r.per_worker_batch * r.accumulation_steps):
            yield [(x[part], y[part]) for part in np.split(idx, r.accumulation_steps)]

    def _end_epoch(self, epoch: int, epoch_steps: list[dict], losses: list[float], started: float) -> dict:
        engine, x, y = self.engine, self.data.x_test, self.data.y_test
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
        if self.args.save_params and self.engine.rank == 0:
            np.save(self.out / "params.npy", params)
        return {"parameters_sha256_per_rank": digests, "ranks_in_sync": len(set(digests)) == 1}

    def _summary(self, epoch_records: list[dict], steps: int, started: float) -> dict:
        r, last = self.recipe, epoch_records[-1]
        skip = min(self.args.timing_skip, max(steps - 1, 0))
        return {
            "kind": "train", "backend": self.engine.name, "model": self.args.model, "dataset": self.data.name,
            "recipe": r.name, "world_size": self.engine.size, "per_worker_batch": r.per_worker_batch,
            "accumulation_steps": r.accumulation_steps, "global_batch": r.global_batch, "peak_lr": r.peak_lr,
            "optimizer": r.optimizer, "epochs": steps / r.steps_per_epoch, "steps": steps,
            "threads_per_rank": self.engine.threads, "model_bytes": int(self.engine.flat_parameters().size * 4),
            "test_accuracy": last["test_accuracy"],
            "test_loss": last["test_loss"], "train_loss": last["train_loss"],
            **throughput(self.step_records, images_per_step=r.per_worker_batch * r.accumulation_steps, skip=skip),
            "timing_skip": skip, "wall_time_s": time.perf_counter() - started, "complete": True,
        }
