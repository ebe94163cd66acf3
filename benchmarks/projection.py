"""The projection ``harness project`` and ``harness report`` share: defaults, the model from a run, the plot.

One set of defaults (:class:`Projection`): the named network ``nvlink-100gbe-roce`` (8 GPUs per node on
NVLink, 100 Gbit/s RoCE per node, :mod:`benchmarks.networks`), Horovod 0.28's fusion (128 MiB threshold,
1 ms cycle), its default flat ring (NCCL), 8 → 256 GPUs, efficiency relative to one worker (k0 = 1),
σ = ``SIGMA_GPU`` unless a run measured its own, γ = ``INTERFERENCE``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from benchmarks.costmodel import (
    ALGORITHMS,
    INTERFERENCE,
    MIB,
    SIGMA_GPU,
    Fusion,
    InputSide,
    Network,
    Workload,
    project,
    step_time_spread,
)
from benchmarks.layer_trace import LAYERS_FILE, load_trace
from benchmarks.layers import ARCHITECTURES, architecture, readiness
from benchmarks.networks import (
    DEFAULT_ALGORITHM,
    DEFAULT_BASE_WORLD_SIZE,
    DEFAULT_NETWORK,
    DEFAULT_WORLD_SIZES,
    GB,
    named,
)
from harness.runtime.records import RECORDS, SUMMARY, read_records

DEFAULT_PER_WORKER_BATCH = 32


@dataclasses.dataclass(frozen=True)
class Projection:
    """Where and how to project; ``None`` fields take the named network's value.

    Attributes:
        network: a :data:`benchmarks.networks.NETWORKS` name.
        gpus_per_node, inter_gbps, intra_gbps, latency_us, inter_efficiency: overrides (Gbit/s, µs, 0-1).
        algorithm: allreduce algorithm; fusion_mb (MiB), cycle_ms (ms): Horovod's knobs.
        sigma: straggler σ (None: the run's measured value, else ``SIGMA_GPU``); interference: γ.
        base_world_size: k0 of the efficiency; world_sizes: k to project.
        input_images_per_s: images/s one node's input pipeline delivers (None: input not modelled).
        storage_gbps: the shared filesystem's aggregate read rate in Gbit/s; image_bytes: bytes per
            stored image (both or neither).
    """

    network: str = DEFAULT_NETWORK
    gpus_per_node: int | None = None
    inter_gbps: float | None = None
    intra_gbps: float | None = None
    latency_us: float | None = None
    inter_efficiency: float | None = None
    algorithm: str = DEFAULT_ALGORITHM
    fusion_mb: float = 128.0
    cycle_ms: float = 1.0
    sigma: float | None = None
    interference: float = INTERFERENCE
    base_world_size: int = DEFAULT_BASE_WORLD_SIZE
    world_sizes: tuple[int, ...] = DEFAULT_WORLD_SIZES
    input_images_per_s: float | None = None
    storage_gbps: float | None = None
    image_bytes: float | None = None

    def input_side(self) -> InputSide | None:
        """The input terms, or None when none is given.

        Raises:
            ValueError: a value <= 0, or storage without image bytes (or the reverse).
        """
        if self.input_images_per_s is None and self.storage_gbps is None and self.image_bytes is None:
            return None
        return InputSide(self.input_images_per_s, None if self.storage_gbps is None else self.storage_gbps * 1e9 / 8,
                         self.image_bytes)

    def net(self) -> Network:
        """The network with overrides applied.

        Raises:
            ValueError: unknown name or out-of-range values.
        """
        base = named(self.network)
        changes = {key: value for key, value in (
            ("gpus_per_node", self.gpus_per_node),
            ("inter_bandwidth", None if self.inter_gbps is None else self.inter_gbps * 1e9 / 8),
            ("intra_bandwidth", None if self.intra_gbps is None else self.intra_gbps * 1e9 / 8),
            ("latency_s", None if self.latency_us is None else self.latency_us * 1e-6),
            ("inter_efficiency", self.inter_efficiency)) if value is not None}
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        return dataclasses.replace(base, **changes, name=base.name + (" (modified)" if changes else ""))

    def fusion(self) -> Fusion:
        """Horovod's threshold (bytes) and cycle (s)."""
        return Fusion(self.fusion_mb * MIB, self.cycle_ms * 1e-3)

    def describe(self, net: Network | None = None) -> str:
        """One sentence naming every setting."""
        net = net or self.net()
        return (f"{net.name}: {net.gpus_per_node} GPUs/node, {net.inter_bandwidth * 8 / 1e9:g} Gbit/s per node at "
                f"{100 * net.inter_efficiency:.0f}% achieved, {net.intra_bandwidth / GB:g} GB/s inside a node at "
                f"{100 * net.intra_efficiency:.0f}%, α = {net.latency_s * 1e6:g} µs; {self.algorithm} allreduce, "
                f"Horovod fusion {self.fusion_mb:g} MiB / cycle {self.cycle_ms:g} ms; interference γ = "
                f"{self.interference:g}; efficiency relative to k0 = {self.base_world_size}"
                + (f"; input {self.input_images_per_s:,.0f} images/s per node" if self.input_images_per_s else "")
                + (f"; storage {self.storage_gbps:g} Gbit/s for all nodes, {self.image_bytes / 1e3:,.0f} kB per image"
                   if self.storage_gbps else ""))

    def run(self, workload: Workload, *, sigma: float, per_worker_batch: int | None) -> list[dict]:
        """:func:`benchmarks.costmodel.project` with these settings."""
        return project(workload, list(self.world_sizes), self.net(), base_world_size=self.base_world_size,
                       per_worker_batch=per_worker_batch, algorithm=self.algorithm, fusion=self.fusion(),
                       sigma=sigma, interference=self.interference, input_side=self.input_side())


def input_verdict(rows: list[dict]) -> str | None:
    """Where the projected job turns input- or storage-bound, in words (None when it never does)."""
    said = []
    for stage in ("input", "storage"):
        bound = [r for r in rows if r.get("bound") == stage]
        if bound:
            first = bound[0]
            said.append(f"{stage}-bound from k = {first['world_size']} ({100 * first['efficiency']:.1f}% efficiency "
                        f"there; {first[stage + '_s'] * 1e3:.1f} ms of {stage} against {first['train_step_s'] * 1e3:.1f} "
                        "ms of compute and allreduce a step)")
    if said:
        return "; ".join(said)
    if any(r.get("input_s") is not None or r.get("storage_s") is not None for r in rows):
        return "never input- or storage-bound at these world sizes"
    return None


def workload_for(model: str, compute_s: float, *, model_bytes: float | None = None,
                 backward_fraction: float = 2 / 3) -> Workload:
    """A layer-table workload for a known architecture name, else bytes spread uniformly over backward."""
    if model in ARCHITECTURES:
        sizes, ready = readiness(architecture(model), backward_share=backward_fraction)
        return Workload(tuple(sizes), tuple(ready), compute_s, model)
    if not model_bytes:
        raise ValueError(f"give model bytes or one of {', '.join(ARCHITECTURES)} as the model, got {model!r}")
    return Workload.uniform(model_bytes, compute_s, backward_fraction=backward_fraction, name=model)


def workload_from_trace(trace: dict, compute_s: float, name: str) -> Workload:
    """Measured readiness (:mod:`benchmarks.layer_trace`) scaled to ``compute_s``."""
    total = trace["forward_s"] + trace["backward_s"]
    params = sorted(trace["params"], key=lambda p: p["ready_s"])
    ready = np.clip([(trace["forward_s"] + p["ready_s"]) / total for p in params], 0.0, 1.0)
    ready = np.maximum.accumulate(ready)
    ready[-1] = 1.0
    return Workload(tuple(float(p["bytes"]) for p in params), tuple(ready), compute_s, name)


def from_run(run_dir: str | Path) -> dict:
    """The measured model of a throughput or training run directory.

    Compute is the run's median step time (its k; at k = 1 compute alone); bytes from ``model_bytes``;
    readiness from ``layers.json`` in the directory (:mod:`benchmarks.layer_trace`) if present, else the
    layer table for a known architecture, else uniform; σ from the per-step times of rank 0.

    Returns:
        ``workload``, ``per_worker_batch``, ``sigma_measured`` (None when fewer than 5 steps), ``sigma``
        (the same for a CUDA run, None for a CPU run), ``readiness`` (how it was obtained),
        ``world_size``, ``device``.

    Raises:
        ValueError: not a run directory, or a run without ``model_bytes`` and no layer trace.
    """
    run_dir = Path(run_dir)
    try:
        summary = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{run_dir}: no readable {SUMMARY} ({exc.__class__.__name__})") from None
    if "step_time_s_median" not in summary:
        raise ValueError(f"{run_dir / SUMMARY}: no step_time_s_median: not a throughput or training run")
    compute, model = float(summary["step_time_s_median"]), str(summary.get("model", "model"))
    if (run_dir / LAYERS_FILE).exists():
        workload, how = workload_from_trace(load_trace(run_dir / LAYERS_FILE), compute, model), "measured (hooks)"
    elif model in ARCHITECTURES or summary.get("model_bytes"):
        workload = workload_for(model, compute, model_bytes=summary.get("model_bytes"))
        how = "layer table (FLOPs)" if model in ARCHITECTURES else "uniform in bytes (no layers.json)"
    else:
        raise ValueError(f"{run_dir}: no model_bytes in {SUMMARY} and no {LAYERS_FILE}")
    steps = []
    if (run_dir / RECORDS).exists():
        steps = [r["step_time_s"] for r in read_records(run_dir / RECORDS)
                 if r.get("kind") == "step" and r.get("rank", 0) == 0 and "step_time_s" in r]
    measured = step_time_spread(steps) if len(steps) >= 5 else None
    device = summary.get("device", {"type": "cpu", "name": "cpu"})
    # a spread measured on CPUs says nothing about GPUs: a CPU run projects with SIGMA_GPU
    return {"workload": workload, "per_worker_batch": int(summary.get("per_worker_batch", DEFAULT_PER_WORKER_BATCH)),
            "sigma": measured if device.get("type") == "cuda" else None, "sigma_measured": measured,
            "readiness": how, "world_size": int(summary.get("world_size", 1)), "device": device}


def resolve_sigma(setting: Projection, measured: float | None) -> tuple[float, str]:
    """σ to use and where it came from: the flag, the run's measurement, else ``SIGMA_GPU``."""
    if setting.sigma is not None:
        return setting.sigma, "given"
    if measured is not None:
        return measured, "measured from the run's per-step times (rank 0)"
    return SIGMA_GPU, "SIGMA_GPU (fitted on NVIDIA DGX-1 V100)"
