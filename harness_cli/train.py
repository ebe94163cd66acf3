"""``harness train``: the recipe on k Horovod workers, with records and a summary.

Framework-free loop over a backend engine (:class:`backends.torch.engine.TorchEngine` or the
Keras one). Runs alone (k = 1) or under ``horovodrun``/``mpirun``; k comes from Horovod.
Data: one shuffle per epoch split over the k workers (:mod:`harness.sharding`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from harness.datasets import load_fashion_mnist, synthetic
from harness.errors import NonFiniteError
from harness.recipe import PRESETS, Recipe
from harness_cli.checkpoint import (CHECKPOINT, describe_failures, is_peer_shutdown, load_checkpoint, parse_fault,
                                    read_failures, resume_problem)
from harness_cli.errors import RunFailure, UsageError
from harness_cli.records import SUMMARY, prepare_out_dir
from harness_cli.trainer import Trainer

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
    p.add_argument("--checkpoint-steps", type=int, default=0, metavar="N",
                   help="rank 0 writes DIR/checkpoint.pkl every N steps (atomically)")
    p.add_argument("--checkpoint-epochs", type=int, default=0, metavar="N", help="... and every N epochs")
    p.add_argument("--resume", action="store_true",
                   help="continue from DIR/checkpoint.pkl with the same LR, step and shard order")
    p.add_argument("--nonfinite", choices=("stop", "skip"), default="stop",
                   help="a NaN/Inf averaged gradient: stop with an error (default) or skip the step and count it")


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
        raise UsageError(str(exc), local=True) from None
    return dataclasses.replace(data, x_train=data.x_train[:args.train_size], y_train=data.y_train[:args.train_size],
                               x_test=data.x_test[:args.test_size], y_test=data.y_test[:args.test_size])


def make_engine(backend: str, threads: int | None, nonfinite: str = "stop"):
    """Import and start the backend's engine (initialises Horovod)."""
    if backend == "torch":
        from backends.torch.engine import TorchEngine

        return TorchEngine(threads=threads, nonfinite=nonfinite)
    from backends.keras.engine import KerasEngine

    return KerasEngine(threads=threads, nonfinite=nonfinite)


def _default_threads() -> int:
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("HOROVOD_LOCAL_SIZE") or 1)
    return max(1, (os.cpu_count() or 1) // local)


def _check_flags(args: argparse.Namespace) -> None:
    for name in ("per_worker_batch", "max_steps", "threads", "train_size", "test_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("timing_skip", "checkpoint_steps", "checkpoint_epochs"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    try:
        parse_fault(os.environ.get("HARNESS_FAULT"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _read_checkpoint(out: Path) -> tuple[dict | None, dict | None, str | None]:
    """Rank 0's view of ``--resume``: (meta, state, problem)."""
    path = out / CHECKPOINT
    if not path.exists():
        return None, None, f"--resume: no {CHECKPOINT} in {out}"
    try:
        meta, state = load_checkpoint(path)
    except (OSError, ValueError) as exc:
        return None, None, f"--resume: {exc}"
    return meta, state, None


def _claim(engine, args: argparse.Namespace, out: Path, recipe: Recipe):
    """Check the run directory (and read the checkpoint) on rank 0; every rank gets the verdict."""
    meta = state = None
    if engine.rank == 0:
        if args.resume:
            meta, state, problem = _read_checkpoint(out)
            if meta and not problem:
                problem = resume_problem(meta, recipe=recipe.to_dict(), backend=engine.name, model=args.model,
                                         world_size=engine.size, seed=args.seed)
                if not problem and meta["step"] >= min(args.max_steps or recipe.total_steps, recipe.total_steps):
                    problem = f"--resume: the checkpoint is already at step {meta['step']}, the end of this run"
        else:
            problem = prepare_out_dir(out, args.overwrite)
    else:
        problem = None
    problem, meta, state = engine.broadcast_object((problem, meta, state))  # rank 0's verdict, one broadcast
    if problem:
        raise UsageError(problem)
    return meta, state


def _peer_failure(engine, out: Path, exc: BaseException) -> RunFailure:
    """A collective failed because another rank stopped: name it from its failure marker if we can."""
    for _ in range(20):
        markers = read_failures(out, exclude_rank=engine.rank)
        if markers:
            return RunFailure(describe_failures(markers))
        time.sleep(0.25)
    return RunFailure(f"another rank stopped ({type(exc).__name__}); the launcher's output names it")


def run_train(args: argparse.Namespace) -> int:
    """``harness train``: returns the exit code; user mistakes raise :class:`UsageError`."""
    _check_flags(args)
    data = load_dataset(args)
    engine = make_engine(args.backend, args.threads or _default_threads(), args.nonfinite)
    recipe = resolve_recipe(args, world_size=engine.size, dataset_size=len(data.y_train))
    out = Path(args.out)
    meta, state = _claim(engine, args, out, recipe)
    try:
        engine.build(recipe, model=args.model, input_shape=data.input_shape, num_classes=data.num_classes,
                     seed=args.seed, fp16_allreduce=args.fp16_allreduce)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    start = None
    if meta:
        engine.set_state(state)
        start = {key: meta[key] for key in ("step", "epoch", "batch")}
    try:
        summary = Trainer(engine, recipe, data, args, out, start).run()
    except NonFiniteError as exc:
        raise RunFailure(f"{exc} (--nonfinite stop; --nonfinite skip skips such steps and counts them)") from None
    except Exception as exc:
        if is_peer_shutdown(exc):
            raise _peer_failure(engine, out, exc) from None
        raise
    if engine.rank == 0:
        print(f"test accuracy {summary['test_accuracy']:.4f} | {summary['images_per_second']:.0f} images/s "
              f"on {summary['world_size']} workers | {out / SUMMARY}")
    return 0
