"""One training run from a typed configuration: claim the run directory, build, resume, train.

What ``harness train`` does after parsing its flags, callable from Python too::

    from backends import make_engine
    from harness.runtime.config import RecipeSpec, RunConfig
    from harness.runtime.train import run_training

    summary = run_training(RunConfig(out="runs/k1", model="mlp"), RecipeSpec(), make_engine)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import NonFiniteError
from harness.recipe import Recipe
from harness.runtime.checkpoint import CHECKPOINT, load_checkpoint, resume_problem
from harness.runtime.config import RecipeSpec, RunConfig
from harness.runtime.data import load_data
from harness.runtime.devices import computes_on_gpu
from harness.runtime.engine import Engine
from harness.runtime.errors import ConfigError, RunFailure
from harness.runtime.faults import describe_failures, describe_lost_peers, is_peer_shutdown, parse_fault, read_failures
from harness.runtime.images import BadImageError
from harness.runtime.loop import Trainer
from harness.runtime.models import resolve_model
from harness.runtime.pipeline import DecodeWorkerDied
from harness.runtime.records import local_size, prepare_out_dir, usable_cpus
from harness.runtime.source import DataSource, as_source


def default_threads() -> int:
    """Intra-op threads per rank: the cores this process may run on (its CPU affinity: an emulated host's
    share, a Slurm allocation) divided by the ranks launched on this host."""
    return max(1, usable_cpus() // local_size())



def as_config_error(exc: ValueError) -> ConfigError:
    """``exc`` as a :class:`ConfigError` (itself when it is one: its fields kept)."""
    return exc if isinstance(exc, ConfigError) else ConfigError(str(exc))


def check_fault_variable() -> None:
    """Validate ``HARNESS_FAULT`` before anything starts.

    Raises:
        ConfigError: a malformed value.
    """
    try:
        parse_fault(os.environ.get("HARNESS_FAULT"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _read_checkpoint(out: Path) -> tuple[dict | None, dict | None, str | None]:
    """Rank 0's view of ``resume``: (meta, state, problem)."""
    path = out / CHECKPOINT
    if not path.exists():
        return None, None, f"resume: no {CHECKPOINT} in {out}"
    try:
        meta, state = load_checkpoint(path)
    except (OSError, ValueError) as exc:
        return None, None, f"resume: {exc}"
    return meta, state, None


def claim_run_dir(engine: Engine, config: RunConfig, recipe: Recipe) -> tuple[dict | None, dict | None]:
    """Check the run directory (and read the checkpoint) on rank 0; every rank gets the verdict.

    Returns:
        The checkpoint's (meta, state) when resuming, else (None, None).

    Raises:
        ConfigError: the directory has files (no ``overwrite``), or the checkpoint is missing,
            unreadable, of another run, or already at the end.
    """
    meta = state = problem = None
    if engine.rank == 0:
        if config.resume:
            meta, state, problem = _read_checkpoint(config.out)
            if meta and not problem:
                problem = resume_problem(meta, recipe=recipe.to_dict(), backend=engine.name, model=config.model,
                                         world_size=engine.size, seed=config.seed)
                if not problem and meta["step"] >= config.stop_step(recipe):
                    problem = f"resume: the checkpoint is already at step {meta['step']}, the end of this run"
        else:
            problem = prepare_out_dir(config.out, config.overwrite)
    problem, meta, state = engine.broadcast_object((problem, meta, state))  # rank 0's verdict, one broadcast
    if problem:
        raise ConfigError(problem, fields=("resume",) if config.resume else ("out", "overwrite"))
    return meta, state


def _peer_failure(engine: Engine, out: Path, exc: BaseException, rank_hosts: list[str] | None) -> RunFailure:
    """A collective failed because another rank stopped: name it from its failure marker if we can, else name
    the hosts of the other ranks (:func:`~harness.runtime.faults.describe_lost_peers`)."""
    for _ in range(20):
        markers = read_failures(out, exclude_rank=engine.rank)
        if markers:
            return RunFailure(describe_failures(markers))
        time.sleep(0.25)
    return RunFailure(f"another rank stopped ({type(exc).__name__}); {describe_lost_peers(rank_hosts, engine.rank)}")


def run_training(config: RunConfig, spec: RecipeSpec, make_engine: Callable[..., Engine]) -> tuple[Engine, dict]:
    """Train one run on this rank (alone, or as one of k launched workers).

    Args:
        config: the run.
        spec: where the recipe comes from; k and the dataset size are filled in here.
        make_engine: ``make_engine(backend, threads=, nonfinite=, device=, precision=, channels_last=)``
            returning a started engine
            (:func:`backends.make_engine`); the runtime imports no framework itself.

    Returns:
        (engine, summary): the engine (for its rank) and the run's summary (``summary.json``).

    Raises:
        ConfigError: a user mistake (flags, data, model, recipe, run directory, checkpoint).
        RunFailure: the run started and failed (a peer died, a non-finite gradient under ``stop``).
    """
    check_fault_variable()
    if config.elastic and os.environ.get("HOROVOD_ELASTIC") != "1":
        raise ConfigError("elastic runs under horovodrun's elastic mode (HOROVOD_ELASTIC=1): launch the worker "
                          "with harness.runtime.launch.elastic_launch_command", fields=("elastic",))
    model = resolve_model(config.model)
    threads = config.threads or default_threads()
    data = load_data(config.data, model=config.model, seed=config.seed, threads=threads,
                     gpu=computes_on_gpu(config.device))
    source = as_source(data, seed=config.seed)
    try:
        return _train(config, spec, make_engine, model, source, threads)
    finally:
        close = getattr(source, "close", None)
        if close:
            close()  # an image source's decode workers


def _normalization(source: DataSource) -> dict:
    """``input_normalization`` for ``engine.build`` when the source gives uint8 images, else nothing."""
    normalization = getattr(source, "normalization", None)
    return {"input_normalization": normalization} if normalization else {}


def _train(config: RunConfig, spec: RecipeSpec, make_engine, model, source: DataSource,
           threads: int) -> tuple[Engine, dict]:
    try:
        engine = make_engine(config.backend, threads=threads, nonfinite=config.nonfinite,
                             device=config.device, precision=config.precision, channels_last=config.channels_last)
    except ValueError as exc:
        raise as_config_error(exc) from None
    check = getattr(source, "check_world_size", None)
    if check:
        check(engine.size)
    recipe = spec.resolve(world_size=engine.size, dataset_size=source.train_size)
    if config.elastic:
        return engine, _run_elastic(engine, config, spec, recipe, model, source)
    created = not config.out.exists()
    meta, state = claim_run_dir(engine, config, recipe)
    try:
        engine.build(recipe, model=model, input_shape=source.input_shape, num_classes=source.num_classes,
                     seed=config.seed, fp16_allreduce=config.fp16_allreduce, **_normalization(source))
    except ValueError as exc:
        if created and engine.rank == 0 and config.out.is_dir() and not any(config.out.iterdir()):
            config.out.rmdir()  # a model that cannot be built leaves nothing behind
        raise as_config_error(exc) from None
    start = None
    if meta:
        engine.set_state(state)
        start = {key: meta[key] for key in ("step", "epoch", "batch")}
    trainer = Trainer(engine, recipe, source, config, start)
    try:
        return engine, trainer.run()
    except NonFiniteError as exc:
        raise RunFailure(f"{exc} (nonfinite stop; nonfinite skip skips such steps and counts them)",
                         fields=("nonfinite",)) from None
    except BadImageError as exc:
        raise RunFailure(f"{exc} (data.bad_images stop; data.bad_images skip skips such images and counts them)",
                         fields=("data.bad_images",)) from None
    except DecodeWorkerDied as exc:
        raise RunFailure(str(exc), fields=("data.data_workers",)) from None
    except Exception as exc:
        if is_peer_shutdown(exc):
            raise _peer_failure(engine, config.out, exc, getattr(trainer, "placement", {}).get("rank_hosts")) from None
        raise


def _run_elastic(engine: Engine, config: RunConfig, spec: RecipeSpec, recipe: Recipe, model, source) -> dict:
    """An elastic worker: build without collectives (Horovod's first sync broadcasts rank 0's state), then
    train under the elastic driver. The launching process has already claimed the run directory."""
    from harness.runtime.elastic import ElasticTrainer

    if recipe.epochs != int(recipe.epochs):
        raise ConfigError(f"elastic trains whole epochs; got epochs={recipe.epochs}", fields=("elastic",))
    try:
        engine.build(recipe, model=model, input_shape=source.input_shape, num_classes=source.num_classes,
                     seed=config.seed, fp16_allreduce=config.fp16_allreduce, broadcast=False,
                     **_normalization(source))
    except ValueError as exc:
        raise as_config_error(exc) from None
    return ElasticTrainer(engine, spec, source, config).run()
