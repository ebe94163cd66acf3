"""The benchmarks as worker jobs: typed configs that ``python -m harness.runtime.worker JOB.json`` runs.

:class:`ThroughputJob` (kind ``throughput``, :func:`benchmarks.throughput.run_throughput`) and
:class:`AllreduceJob` (kind ``allreduce``, :func:`benchmarks.allreduce.run_allreduce`). ``harness bench``
builds one from its flags and runs it here, or writes it to ``OUT/job.json`` and launches it under
``--np``; ``harness sweep`` and ``make bench-peers`` build them directly. Each checks its fields when
built (:class:`~harness.runtime.errors.ConfigError` naming the field) and writes a run directory
(``records.jsonl``, ``summary.json``) from rank 0.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from harness.runtime.config import DEVICES, PRECISIONS, check_at_least, check_choice
from harness.runtime.errors import ConfigError
from harness.runtime.knobs import apply_horovod_knobs
from harness.runtime.records import RECORDS, SUMMARY, RecordWriter, environment, prepare_out_dir
from harness.runtime.worker import ENGINES, resolve

LAYOUTS = ("NCHW", "NHWC")


def claim_out_dir(collectives, rank: int, out: Path, overwrite: bool) -> Path:
    """Rank 0 prepares ``out`` (:func:`~harness.runtime.records.prepare_out_dir`); every rank gets the verdict.

    Raises:
        ConfigError: ``out`` has files and not ``overwrite``, or is a file.
    """
    problem = collectives.broadcast_object(prepare_out_dir(out, overwrite) if rank == 0 else None)
    if problem:
        raise ConfigError(problem, fields=("out", "overwrite"))
    return out


def write_run(out: Path, records: list[dict], summary: dict) -> None:
    """``out/records.jsonl`` and ``out/summary.json`` of a finished benchmark (rank 0)."""
    writer = RecordWriter(out / RECORDS)
    writer.write(records)
    writer.close()
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class ThroughputJob:
    """Synthetic-data (or the user's first n images) training throughput, timed on every rank.

    Attributes:
        out: the run directory (new or empty unless ``overwrite``).
        backend, model, threads, device, precision, channels_last: as :class:`~harness.runtime.config.RunConfig`'s.
        per_worker_batch: n, images per rank per step.
        warmup_steps: untimed steps first.
        steps: timed steps per rank.
        batches_per_iter: steps per iteration for the mean ± CI.
        input_shape: (C, H, W) of the synthetic images (None: the model's default).
        num_classes: synthetic classes (None: the model's default).
        dataset: an ``.npz`` file whose first n training images are timed instead (sets shape and classes).
        layout: the image layout of ``dataset``'s arrays.
        peers: baselines timed right after in the same processes (:data:`benchmarks.peers.PEERS`).
        fusion_threshold_mb, cycle_time_ms: Horovod's knobs (:mod:`harness.runtime.knobs`; None: as set).
        overwrite: allow an ``out`` that has files.
        engine: ``package.module:function`` of the engine factory.

    Raises:
        ConfigError: a field out of range, naming it.
    """

    kind: ClassVar[str] = "throughput"
    out: Path
    backend: str = "torch"
    model: str = "resnet-small"
    per_worker_batch: int = 32
    warmup_steps: int = 5
    steps: int = 50
    batches_per_iter: int = 10
    threads: int = 1
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    dataset: str | None = None
    layout: str = "NCHW"
    peers: tuple[str, ...] = ()
    fusion_threshold_mb: float | None = None
    cycle_time_ms: float | None = None
    overwrite: bool = False
    engine: str = ENGINES

    def __post_init__(self):
        from benchmarks.peers import PEERS, TORCH_ONLY

        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "peers", tuple(self.peers))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
        for name in ("per_worker_batch", "steps", "batches_per_iter", "threads", "num_classes"):
            check_at_least(name, getattr(self, name), 1)
        check_at_least("warmup_steps", self.warmup_steps, 0)
        if self.steps < self.batches_per_iter:
            raise ConfigError(f"steps ({self.steps}) must be >= batches_per_iter ({self.batches_per_iter})",
                              fields=("steps", "batches_per_iter"))
        for name, allowed in (("device", DEVICES), ("precision", PRECISIONS), ("layout", LAYOUTS)):
            check_choice(name, getattr(self, name), allowed)
        unknown = sorted(set(self.peers) - set(PEERS))
        if unknown:
            raise ConfigError(f"peers: unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}",
                              fields=("peers",))
        if self.backend != "torch" and set(self.peers) & set(TORCH_ONLY):
            raise ConfigError(f"peers {','.join(sorted(set(self.peers) & set(TORCH_ONLY)))}: torch loops, for backend "
                              f"torch only (Keras: peers plain)", fields=("peers", "backend"))

    def run(self) -> str | None:
        """Measure on this rank; rank 0's result lines (None on the other ranks).

        Raises:
            ConfigError: a bad model, dataset or run directory.
        """
        from benchmarks.throughput import check_bench_data, run_throughput
        from harness.runtime.models import resolve_model

        apply_horovod_knobs(fusion_threshold_mb=self.fusion_threshold_mb, cycle_time_ms=self.cycle_time_ms)
        model = resolve_model(self.model)
        data = self._data(check_bench_data)
        try:
            engine = resolve(self.engine)(self.backend, threads=self.threads, device=self.device,
                                          precision=self.precision, channels_last=self.channels_last)
        except ValueError as exc:
            raise exc if isinstance(exc, ConfigError) else ConfigError(str(exc)) from None
        created = not self.out.exists()
        claim_out_dir(engine, engine.rank, self.out, self.overwrite)
        try:
            records, summary = run_throughput(engine, model=model, per_worker_batch=self.per_worker_batch,
                                              warmup_steps=self.warmup_steps, steps=self.steps,
                                              batches_per_iter=self.batches_per_iter, input_shape=self.input_shape,
                                              num_classes=self.num_classes, peers=self.peers, data=data)
        except ValueError as exc:
            if created and engine.rank == 0 and self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()  # a model that cannot be built leaves nothing behind
            raise exc if isinstance(exc, ConfigError) else ConfigError(str(exc)) from None
        if engine.rank != 0:
            return None
        run = {"kind": "run", "rank": 0, "world_size": engine.size, "command": "bench throughput", **environment()}
        write_run(self.out, [run, *records], summary)
        return throughput_lines(summary, self.out)

    def _data(self, check_bench_data):
        """The user's dataset (checked against this job), or None for synthetic images."""
        if not self.dataset:
            return None
        from harness.datasets import load_npz

        try:
            data = load_npz(self.dataset, layout=self.layout)
        except ValueError as exc:
            raise ConfigError(f"dataset {exc}", fields=("dataset", "layout")) from None
        check_bench_data(data, self.per_worker_batch, input_shape=self.input_shape, num_classes=self.num_classes)
        return data


def throughput_lines(summary: dict, out: Path) -> str:
    """What a finished throughput run prints: the totals, the CI and spread, the device, then each peer."""
    device = summary.get("device", {})
    where = f"{device.get('type', 'cpu')} ({device.get('name', 'cpu')}), {summary.get('precision', 'fp32')}"
    lines = [f"{summary['model']} k={summary['world_size']} n={summary['per_worker_batch']}: "
             f"{summary['images_per_second']:.1f} images/s total "
             f"({summary['images_per_second_iter_mean']:.1f} ± {summary['images_per_second_ci95']:.1f} per "
             f"iteration), {summary['images_per_second_per_worker']:.1f} per worker, step time spread "
             f"{100 * summary['step_time_s_spread']:.1f}% across ranks on {where} | {out / SUMMARY}"]
    for peer, result in summary.get("peers", {}).items():
        lines.append(f"peer {peer}: {result['images_per_second_per_worker']:.1f} images/s per worker; "
                     f"harness / {peer} = {summary[f'ratio_to_{peer}']:.3f}")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class AllreduceJob:
    """Allreduce algbw/busbw through Horovod, ``torch.distributed`` as the peer.

    Attributes:
        out: the run directory (new or empty unless ``overwrite``).
        sizes: ``START..END`` in B/KB/MB/GB.
        factor: each size is ``factor`` times the last.
        iters: timed iterations per size (fewer for large sizes).
        warmup: untimed iterations per size.
        peer: also time ``torch.distributed`` (Gloo for host tensors, NCCL for GPU tensors).
        device: where the tensors live: ``auto`` (the device training uses), ``cpu`` or ``cuda``.
        fusion_threshold_mb, cycle_time_ms: Horovod's knobs (None: as set).
        overwrite: allow an ``out`` that has files.

    Raises:
        ConfigError: a field out of range, naming it.
    """

    kind: ClassVar[str] = "allreduce"
    out: Path
    sizes: str = "1KB..256MB"
    factor: int = 4
    iters: int = 20
    warmup: int = 3
    peer: bool = True
    device: str = "auto"
    fusion_threshold_mb: float | None = None
    cycle_time_ms: float | None = None
    overwrite: bool = False

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        self.size_list()
        check_at_least("iters", self.iters, 1)
        check_at_least("warmup", self.warmup, 0)
        check_choice("device", self.device, DEVICES)

    def size_list(self) -> list[int]:
        """The message sizes in bytes (:func:`benchmarks.allreduce.size_range`).

        Raises:
            ConfigError: malformed ``sizes`` or ``factor`` < 2.
        """
        from benchmarks.allreduce import size_range

        try:
            return size_range(self.sizes, self.factor)
        except ValueError as exc:
            raise ConfigError(f"sizes: {exc}", fields=("sizes",)) from None

    def run(self) -> str | None:
        """Measure on this rank; rank 0's table and summary line (None on the other ranks)."""
        import horovod.torch as hvd
        from tabulate import tabulate

        from benchmarks.allreduce import allreduce_device, run_allreduce
        from harness.runtime.knobs import horovod_knobs

        apply_horovod_knobs(fusion_threshold_mb=self.fusion_threshold_mb, cycle_time_ms=self.cycle_time_ms)
        hvd.init()
        allreduce_device(self.device, hvd.local_rank())  # a rank without its GPU stops before any output exists
        claim_out_dir(hvd, hvd.rank(), self.out, self.overwrite)
        sizes = self.size_list()
        records = run_allreduce(sizes, iters=self.iters, warmup=self.warmup, peer=self.peer, device=self.device)
        if hvd.rank() != 0:
            return None
        summary = {"kind": "allreduce", "world_size": hvd.size(), "sizes_bytes": sizes,
                   "device": records[0]["device"] if records else None, "nccl_built": bool(hvd.nccl_built()),
                   "controller": "gloo" if hvd.gloo_enabled() else "mpi", **horovod_knobs(), "results": records}
        run = {"kind": "run", "rank": 0, "world_size": hvd.size(), "command": "bench allreduce", **environment()}
        write_run(self.out, [run, *records], summary)
        rows = [(r["impl"], r["size_bytes"], f"{r['time_s'] * 1e3:.3f}", f"{r['algbw_gbps']:.3f}",
                 f"{r['busbw_gbps']:.3f}") for r in records]
        return (tabulate(rows, headers=["impl", "bytes", "time ms", "algbw GB/s", "busbw GB/s"]) +
                f"\nk={hvd.size()}, {summary['device']} tensors, controller {summary['controller']} | "
                f"{self.out / SUMMARY}")
