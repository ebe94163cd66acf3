"""``harness train``: flags → a :class:`~harness.runtime.worker.TrainJob`, then the runtime trains.

Runs alone (k = 1) or under ``horovodrun``/``mpirun``; k comes from Horovod. With ``--np`` the job is
written to ``OUT/job.json`` and launched as ``python -m harness.runtime.worker OUT/job.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from backends import BACKENDS
from harness.recipe import PRESETS
from harness.runtime.config import (
    DEVICES,
    NONFINITE_POLICIES,
    PRECISIONS,
    DataConfig,
    RecipeSpec,
    RunConfig,
    check_at_least,
)
from harness.runtime.data import BUILTIN
from harness.runtime.errors import ConfigError
from harness.runtime.models import BUILTIN_MODELS
from harness.runtime.records import JOB, prepare_out_dir
from harness.runtime.worker import TrainJob, worker_command, write_job
from harness_cli.launching import add_launch_arguments


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``harness train`` (shared with experiments that launch it)."""
    p.add_argument("--backend", choices=BACKENDS, default="torch")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=sorted(PRESETS), default="fashion-mnist-goyal",
                     help="named recipe (default: fashion-mnist-goyal)")
    src.add_argument("--recipe", metavar="FILE", help="recipe file (.json, .yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a recipe field, e.g. --set warmup=constant (repeatable)")
    p.add_argument("--model", default="resnet-small", metavar="NAME|MODULE:FUNCTION",
                   help=f"{', '.join(BUILTIN_MODELS)}, or your builder package.module:function called as "
                        "f(input_shape, num_classes) (default: resnet-small)")
    p.add_argument("--dataset", default="fashion-mnist", metavar="NAME|FILE.npz|DIR|'PATTERN.tar'",
                   help=f"{', '.join(BUILTIN)}, an .npz with x_train, y_train, x_test, y_test, an image folder "
                        "(DIR/train/<class>/<image>, DIR/val/...), or WebDataset tar shards ('DIR/train-{000000..000099}.tar'; "
                        "the val shards are the same names with val) (default: fashion-mnist)")
    p.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW", help="image layout of an .npz dataset")
    p.add_argument("--data-dir", help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--train-size", type=int, help="use the first N training images (default: all)")
    p.add_argument("--test-size", type=int, help="evaluate on the first N test images (default: all)")
    g = p.add_argument_group("images (an image folder or tar shards)")
    g.add_argument("--image-size", type=int, default=224, metavar="S", help="side of the square crops (default 224)")
    g.add_argument("--data-workers", type=int, metavar="N",
                   help="decode processes per rank (default: the rank's share of the host's CPUs minus its "
                        "threads, or minus one on a GPU; at least 1; 0: decode in the rank)")
    g.add_argument("--bad-images", choices=("stop", "skip"), default="stop",
                   help="an undecodable image: stop naming it (default), or skip it and count it")
    g.add_argument("--min-crop-area", type=float, default=0.08, metavar="F",
                   help="smallest random-resized-crop window, a fraction of the image's area (default 0.08; "
                        "1 trains on whole images)")
    g.add_argument("--eval-crop-fraction", type=float, default=0.875, metavar="F",
                   help="evaluation centre crop's side over the short side (default 0.875 = 224/256)")
    g.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flips in training")
    g.add_argument("--jpeg-decoder", choices=("window", "pillow"), default="window",
                   help="window: decode only each crop's window of a JPEG (libjpeg-turbo), the same pixels; "
                        "pillow: Pillow's full decode and antialiased resize (default: %(default)s)")
    p.add_argument("--per-worker-batch", type=int, help="n, images per worker per step (default: the recipe's)")
    p.add_argument("--epochs", type=float, help="training epochs (default: the recipe's)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (records stay valid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="intra-op threads per rank (default: cores / local ranks)")
    p.add_argument("--fp16-allreduce", action="store_true", help="compress gradients to fp16 for allreduce")
    add_device_arguments(p)
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
    p.add_argument("--nonfinite", choices=NONFINITE_POLICIES, default="stop",
                   help="a NaN/Inf averaged gradient: stop with an error (default) or skip the step and count it")


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--precision`` and ``--channels-last`` (train and bench throughput)."""
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto: this rank's local GPU (cuda:local_rank) when CUDA is available, else the CPU")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="mixed precision: bf16 (autocast / mixed_bfloat16) or fp16 (with loss scaling, GPU); "
                        "weights and the optimizer update stay fp32 (default fp32)")
    p.add_argument("--channels-last", action="store_true", help="torch: channels-last memory format (convnets)")


def parse_value(text: str):
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


def recipe_spec(args: argparse.Namespace) -> RecipeSpec:
    """``--preset``/``--recipe``, ``--per-worker-batch``, ``--epochs`` and ``--set`` as a :class:`RecipeSpec`.

    Raises:
        ConfigError: a malformed ``--set`` or a per-worker batch < 1.
    """
    check_at_least("per_worker_batch", args.per_worker_batch, 1)
    changes = {}
    if args.per_worker_batch is not None:
        changes["per_worker_batch"] = args.per_worker_batch
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    for item in args.overrides:
        field, eq, value = item.partition("=")
        if not eq or not field:
            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        changes[field.strip()] = parse_value(value)
    return RecipeSpec(preset=args.preset, file=args.recipe, changes=changes)


def run_config(args: argparse.Namespace) -> RunConfig:
    """The parsed flags as a :class:`RunConfig` (validated there)."""
    data = DataConfig(source=args.dataset, data_dir=args.data_dir, layout=args.layout, train_size=args.train_size,
                      test_size=args.test_size, image_size=args.image_size, data_workers=args.data_workers,
                      bad_images=args.bad_images, min_crop_area=args.min_crop_area,
                      eval_crop_fraction=args.eval_crop_fraction, flip=args.flip,
                      jpeg_decoder=args.jpeg_decoder)
    return RunConfig(out=Path(args.out), backend=args.backend, model=args.model, data=data, seed=args.seed,
                     threads=args.threads, max_steps=args.max_steps, timing_skip=args.timing_skip,
                     checkpoint_steps=args.checkpoint_steps, checkpoint_epochs=args.checkpoint_epochs,
                     resume=args.resume, overwrite=args.overwrite, save_params=args.save_params,
                     fp16_allreduce=args.fp16_allreduce, nonfinite=args.nonfinite, device=args.device,
                     precision=args.precision, channels_last=args.channels_last, elastic=args.elastic,
                     commit_steps=args.commit_steps)


def train_job(args: argparse.Namespace) -> TrainJob:
    """The parsed flags as a :class:`TrainJob` (every field checked)."""
    return TrainJob(config=run_config(args), recipe=recipe_spec(args))


def worker(args: argparse.Namespace) -> list[str]:
    """``train --np``: check the flags and the run directory here, write ``OUT/job.json``, and return the
    worker command that runs it on every rank.

    Raises:
        ConfigError: a bad flag, or a run directory with files (without ``--overwrite``/``--resume``).
    """
    job = train_job(args)
    if not job.config.resume:
        problem = prepare_out_dir(job.config.out, job.config.overwrite)
        if problem:
            raise ConfigError(problem, fields=("out", "overwrite"))
    return worker_command(write_job(job, job.config.out / JOB))


def run(args: argparse.Namespace) -> int:
    """``harness train``: returns the exit code; user mistakes raise :class:`ConfigError`."""
    job = train_job(args)
    if job.config.elastic and os.environ.get("HOROVOD_ELASTIC") != "1":
        raise ConfigError("--elastic runs under horovodrun's elastic mode: add --np K --min-workers A "
                          "--max-workers B --host-discovery-script FILE, and harness launches it")
    text = job.run()
    if text:
        print(text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """``harness train``: the recipe on k Horovod workers (alone, or under horovodrun/mpirun)."""
    train = sub.add_parser("train", help="train with the recipe; k workers come from Horovod")
    add_train_arguments(train)
    add_launch_arguments(train)
    add_elastic_arguments(train)
    train.set_defaults(func=run, worker=worker)


def add_elastic_arguments(p: argparse.ArgumentParser) -> None:
    """``--elastic`` and its launch bounds (horovodrun's elastic mode)."""
    g = p.add_argument_group("elastic (workers leave and join; the global batch, LR and shards follow k)")
    g.add_argument("--elastic", action="store_true",
                   help="with --np K, --min-workers, --max-workers and --host-discovery-script: launch "
                        "horovodrun's elastic mode (Gloo, torch backend)")
    g.add_argument("--min-workers", type=int, metavar="A", help="the job goes on while at least A workers are up")
    g.add_argument("--max-workers", type=int, metavar="B", help="... and grows to at most B")
    g.add_argument("--host-discovery-script", metavar="FILE",
                   help="prints host:slots lines, run every second (harness cluster writes "
                        "STATE_DIR/discover-hosts.sh)")
    g.add_argument("--commit-steps", type=int, default=10, metavar="N",
                   help="steps between in-memory commits (default 10; a lost worker costs at most N steps)")
