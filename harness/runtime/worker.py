"""One worker entry point: ``python -m harness.runtime.worker JOB.json`` runs this rank's part of a job.

A job is a typed config saved as JSON: ``{"kind": "train", ...its fields}``. Whatever starts k workers
(``harness train --np``, ``harness sweep``, ``make bench-peers``, the batch-scaling experiment, or a
user typing ``horovodrun -np 4 python -m harness.runtime.worker job.json``) writes the job with
:func:`write_job` and launches :func:`worker_command` under ``horovodrun``/``mpirun``
(:func:`harness.runtime.launch.launch_command`); every rank reads the same file. Kinds:

===============  ============================================================================
``train``        :class:`TrainJob`: a :class:`~harness.runtime.config.RunConfig` and a
                 :class:`~harness.runtime.config.RecipeSpec`, trained by
                 :func:`~harness.runtime.train.run_training`
``throughput``   ``benchmarks.jobs.ThroughputJob``: the synthetic-data throughput benchmark
``allreduce``    ``benchmarks.jobs.AllreduceJob``: the allreduce bandwidth benchmark
===============  ============================================================================

The runtime imports no backend or benchmark: a job names its classes and its engine factory by
``package.module:name`` (as ``--model`` does), resolved when the worker starts.

Exit codes as the CLI's: 0, 1 for a run that started and failed (:class:`RunFailure`), 2 for a user
mistake (:class:`ConfigError`: a bad job file or field), each error one line on stderr from rank 0
(from every rank for a host-local error). Messages name config fields, not flags.

Example::

    job = TrainJob(config=RunConfig(out="runs/k2", model="mlp"))
    write_job(job, Path("runs/k2") / JOB)
    subprocess.run(launch_command(worker_command(Path("runs/k2") / JOB), launcher="horovodrun", np=2))
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path
from typing import ClassVar

from harness.runtime.config import RecipeSpec, RunConfig, from_dict, to_dict
from harness.runtime.errors import ConfigError, RunFailure
from harness.runtime.launch import rank_logs_note
from harness.runtime.records import SUMMARY

KINDS = {"train": "harness.runtime.worker:TrainJob", "throughput": "benchmarks.jobs:ThroughputJob",
         "allreduce": "benchmarks.jobs:AllreduceJob"}
ENGINES = "backends:make_engine"  # the default engine factory: backends.make_engine
EXIT_USAGE, EXIT_FAILURE = 2, 1


def resolve(spec: str):
    """The object ``package.module:name`` names.

    Raises:
        ConfigError: not of that form, or the module cannot be imported or has no such name.
    """
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ConfigError(f"{spec!r} is not package.module:name")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {spec}: {type(exc).__name__}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class TrainJob:
    """Train one run: ``config`` with the recipe ``recipe``, on engines from ``engine``.

    Attributes:
        config: the run.
        recipe: where the recipe comes from (k and the dataset size are filled in at run time).
        engine: ``package.module:function`` of the engine factory (:func:`backends.make_engine`).
    """

    kind: ClassVar[str] = "train"
    config: RunConfig
    recipe: RecipeSpec = dataclasses.field(default_factory=RecipeSpec)
    engine: str = ENGINES

    def run(self) -> str | None:
        """Train on this rank; rank 0's one-line result (None on the other ranks).

        Raises:
            ConfigError: a user mistake (a field, data, model, recipe, run directory, checkpoint).
            RunFailure: the run started and failed.
        """
        from harness.runtime.train import run_training

        engine, summary = run_training(self.config, self.recipe, resolve(self.engine))
        return train_line(summary, self.config) if engine.rank == 0 else None


def train_line(summary: dict, config: RunConfig) -> str:
    """The line a finished training run prints: accuracy, throughput or world sizes, the summary's path."""
    if config.elastic:
        return (f"test accuracy {summary['test_accuracy']:.4f} | world sizes {summary['world_sizes']} | "
                f"{config.out / SUMMARY}")
    account, wait = summary.get("input") or {}, ""
    if account.get("data_workers") is not None:  # an image pipeline: say how long the steps waited for it
        wait = f" | data wait {100 * account['data_wait_share']:.0f}%" + (" (input-bound)" if account["input_bound"] else "")
    return (f"test accuracy {summary['test_accuracy']:.4f} | {summary['images_per_second']:.0f} images/s "
            f"on {summary['world_size']} workers{wait} | {config.out / SUMMARY}{rank_logs_note()}")


def job_to_dict(job) -> dict:
    """``job`` as JSON data: ``{"kind": ..., **its fields}``."""
    return {"kind": job.kind, **to_dict(job)}


def job_from_dict(data: dict):
    """The job :func:`job_to_dict` wrote, every field validated.

    Raises:
        ConfigError: not a JSON object, an unknown ``kind``, unknown fields or bad values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a job must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", fields=("kind",))
    return from_dict(resolve(KINDS[kind]), {k: v for k, v in data.items() if k != "kind"})


def write_job(job, path: Path) -> Path:
    """Write ``job`` to ``path`` as JSON (creating its directory); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(job_to_dict(job), indent=2) + "\n")
    return path


def read_job(path: Path, inline: str | None = None):
    """The job in the JSON file ``path``, or in ``inline`` (the file's text, base64: see :func:`worker_command`).

    Raises:
        ConfigError: unreadable, not JSON, or not a valid job.
    """
    try:
        text = base64.urlsafe_b64decode(inline.encode()).decode() if inline is not None else Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read job {path}: {exc.strerror}", local=True) from None
    except ValueError as exc:
        raise ConfigError(f"job {path}: the inline copy is not base64 text: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"job {path} is not JSON: {exc}") from None
    try:
        return job_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"job {path}: {exc}", local=exc.local, fields=exc.fields) from None


def worker_command(path: Path, python: str | None = None) -> list[str]:
    """The worker command for the job file ``path``: launch it under ``horovodrun``/``mpirun``.

    The job travels in the command too (``--inline``, the file's JSON in URL-safe base64, a few KB), so
    ranks on hosts that do not share the run directory's filesystem run the same job; the file stays
    in the run directory as the record of what ran.
    """
    command = [python or sys.executable, "-m", "harness.runtime.worker", str(path)]
    if Path(path).is_file():
        command += ["--inline", base64.urlsafe_b64encode(Path(path).read_bytes()).decode()]
    return command


def launched_rank() -> int:
    """This process's rank under horovodrun or mpirun (0 when run alone), read before Horovod starts."""
    for name in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def say_once(line: str, *, everywhere: bool = False) -> None:
    """Print an error line to stderr once per job (rank 0), or on every rank for a host-local error."""
    rank = launched_rank()
    if rank == 0 or everywhere:
        print(line if rank == 0 else f"{line} (rank {rank})", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the job file ``argv[0]`` on this rank; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--inline"):
        say_once("usage: python -m harness.runtime.worker JOB.json [--inline BASE64]")
        return EXIT_USAGE
    try:
        text = read_job(Path(argv[0]), argv[2] if len(argv) == 3 else None).run()
    except ConfigError as exc:
        say_once(f"harness: error: {exc}", everywhere=exc.local)
        return EXIT_USAGE
    except RunFailure as exc:
        say_once(f"harness: error: {exc}")
        return EXIT_FAILURE
    if text:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
