"""Published scaling results the cost model is validated against, with every input sourced or marked as ours.

Three constants are fitted, on four cases (``role`` says which); every other case is predicted blind
(:func:`fit_constants` re-derives them; the tests check the stored values):

* ``costmodel.SIGMA_GPU`` (σ, stragglers) on NVIDIA's DGX-1 V100 FP32 1 → 8: over NVLink communication
  is < 1% of the step, so the loss is the slowest of 8 workers.
* ``costmodel.INTERFERENCE`` (γ) on the Horovod paper's ResNet-101 and Inception V3 at 128 GPUs over
  25 GbE TCP (least squares over both): both lose 12% although ResNet-101 sends twice the bytes; at any
  TCP fraction ≥ 0.4 their allreduces fit inside backward, so the loss is stragglers and interference.
* ``networks.ROCE_EFFICIENCY`` on Horovod's VGG-16 at 512 GPUs over RoCE (communication-bound).

Stated, not fitted: ``networks.TCP_EFFICIENCY``, ``NVLINK_EFFICIENCY`` and the latencies (their reasons
are in :mod:`benchmarks.networks`). Inputs a source leaves out are in each case's ``assumptions``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.costmodel import (
    DDP,
    GBIT,
    HOROVOD_2018,
    INTERFERENCE,
    PER_LAYER,
    SIGMA_GPU,
    Fusion,
    Network,
    Workload,
    project,
)
from benchmarks.layers import architecture, readiness
from benchmarks.networks import GB, NVLINK_EFFICIENCY, ROCE_EFFICIENCY, TCP_EFFICIENCY


@dataclasses.dataclass(frozen=True)
class Case:
    """A published weak-scaling result (per-worker batch fixed) and the model's inputs for it.

    Attributes:
        name: short label.
        source: where the published figure and the setup come from.
        architecture: a :mod:`benchmarks.layers` network (readiness from its layer table).
        compute_s: T_c, forward + backward seconds per step on one worker.
        network: links, with achieved fractions.
        algorithm: allreduce algorithm.
        fusion: threshold and cycle time of the engine.
        base_world_size, world_size: efficiency = step(base) / step(world_size).
        published_efficiency: the source's figure (0-1).
        role: ``fit: <constant>`` or ``blind``.
        assumptions: inputs the source does not state, with this project's reasoning.
    """

    name: str
    source: str
    architecture: str
    compute_s: float
    network: Network
    algorithm: str
    fusion: Fusion
    base_world_size: int
    world_size: int
    published_efficiency: float
    role: str
    assumptions: str

    def workload(self) -> Workload:
        """The case's readiness: its architecture's layer table, backward split by FLOPs."""
        sizes, ready = readiness(architecture(self.architecture))
        return Workload(tuple(sizes), tuple(ready), self.compute_s, self.architecture)

    def predict(self, *, sigma: float = SIGMA_GPU, interference: float = INTERFERENCE,
                network: Network | None = None) -> float:
        """Predicted weak-scaling efficiency from ``base_world_size`` to ``world_size``."""
        rows = project(self.workload(), [self.world_size], network or self.network,
                       base_world_size=self.base_world_size, algorithm=self.algorithm, fusion=self.fusion,
                       sigma=sigma, interference=interference)
        return rows[0]["efficiency"]


def _big_basin(tcp: float = TCP_EFFICIENCY) -> Network:
    return Network(8, 50 * GBIT, 80 * GB, 25e-6, 5e-6, tcp, NVLINK_EFFICIENCY, "Big Basin: 8 P100 NVLink, 50 GbE")


def _uber(efficiency: float, latency_s: float, transport: str) -> Network:
    return Network(4, 25 * GBIT, 15.75 * GB, latency_s, 5e-6, efficiency, NVLINK_EFFICIENCY,
                   f"4 P100 per server (PCIe), 25 GbE {transport}")


def _dgx(name: str, nvlink_gb: float) -> Network:
    return Network(8, 100 * GBIT, nvlink_gb * GB, 10e-6, 5e-6, 0.9, NVLINK_EFFICIENCY, name)


GOYAL = Case(
    name="Goyal 2017, ResNet-50, 8 → 256 P100",
    source="Goyal et al. 2017, arXiv 1706.02677: abstract and §5.5 (29 h on 8 GPUs → 1 h on 256, ~90%); §4 "
           "(8 P100 per Big Basin server, NVLink; 50 Gbit/s Ethernet; intra-server reduce + inter-server "
           "recursive halving-doubling; a layer's allreduce starts as soon as its gradient is ready)",
    architecture="resnet50", compute_s=0.232, network=_big_basin(), algorithm="hierarchical-hd", fusion=PER_LAYER,
    base_world_size=8, world_size=256, published_efficiency=0.90, role="blind",
    assumptions="T_c = the 8-GPU step time, 29·3600 s / (90 epochs × 5,004 steps) = 0.232 s at n = 32; "
                "P100 NVLink 80 GB/s line per GPU (4 links × 20 GB/s); TCP fraction and α stated in networks.py; "
                "each "                "layer (conv or fc with its BatchNorm) allreduced alone",
)

_HOROVOD_PAPER = ("Sergeev & Del Balso 2018, arXiv 1802.05799, §5 Fig. 6: 1 → 128 Pascal GPUs, 4 per server, "
                  "25 GbE TCP, 88% for Inception V3 and ResNet-101 vs 1 GPU × 128; Horovod < 0.21 defaults "
                  "(64 MiB fusion, 5 ms cycle), NCCL ring")
_HOROVOD_README = ("Horovod README / docs/benchmarks.rst (2018 chart): 128 servers × 4 Pascal GPUs = 512, "
                   "RoCE 25 Gbit/s; 90% for Inception V3 and ResNet-101, 68% for VGG-16")
_P100_NOTE = ("T_c = 64 images / single-P100 rate at batch 64: Inception V3 142 images/s (TensorFlow "
              "benchmarks page, DGX-1 P100, synthetic); ResNet-101 125 and VGG-16 140 images/s are this "
              "project's estimates (same page's ResNet-50/152 and VGG16 figures of the time); PCIe 3.0 x16 "
              "15.75 GB/s between the 4 GPUs of a server (not stated; our estimate)")


def _horovod(model, arch, rate, network, k, eff, role, source):
    return Case(name=f"Horovod 2018, {model}, 1 → {k} P100, {network.name.split(', ')[-1]}", source=source,
                architecture=arch, compute_s=64 / rate, network=network, algorithm="ring", fusion=HOROVOD_2018,
                base_world_size=1, world_size=k, published_efficiency=eff, role=role, assumptions=_P100_NOTE)


_TCP = _uber(TCP_EFFICIENCY, 25e-6, "TCP")
_ROCE = _uber(ROCE_EFFICIENCY, 10e-6, "RoCE")
HOROVOD = [
    _horovod("ResNet-101", "resnet101", 125.0, _TCP, 128, 0.88, "fit: INTERFERENCE", _HOROVOD_PAPER),
    _horovod("Inception V3", "inception3", 142.0, _TCP, 128, 0.88, "fit: INTERFERENCE", _HOROVOD_PAPER),
    _horovod("VGG-16", "vgg16", 140.0, _ROCE, 512, 0.68, "fit: ROCE_EFFICIENCY", _HOROVOD_README),
    _horovod("ResNet-101", "resnet101", 125.0, _ROCE, 512, 0.90, "blind", _HOROVOD_README),
    _horovod("Inception V3", "inception3", 142.0, _ROCE, 512, 0.90, "blind", _HOROVOD_README),
]

_DLE_PT = ("NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, training "
           "performance (pytorch-21.03 container): ")
_DLE_TF = ("NVIDIA DeepLearningExamples, TensorFlow/Classification/ConvNets/resnet50v1.5/README.md, training "
           "performance (TensorFlow 20.06-tf1-py3 container, Horovod), DGX A100 40GB, mixed precision + XLA, "
           "n = 256: 2,375 → 17,400 images/s; Horovod of that container predates 0.21, so 64 MiB / 5 ms "
           "(our reading)")
_DLE_NOTE = ("n = 256 per GPU (the README's batch for AMP/TF32; 112 for V100 FP32 is the repo's DGX-1 config, "
             "our reading); fp32 gradients (AMP keeps fp32 master weights); NVLink line rate per GPU per "
             "direction: A100 300 GB/s (12 links × 25 GB/s), V100 150 GB/s (6 × 25 GB/s)")


def _dle(name, images_1, images_8, batch, network, fusion, role, source):
    return Case(name=name, source=source, architecture="resnet50", compute_s=batch / images_1, network=network,
                algorithm="nccl", fusion=fusion, base_world_size=1, world_size=8,
                published_efficiency=round(images_8 / (8 * images_1), 3), role=role, assumptions=_DLE_NOTE)


_A100 = _dgx("DGX A100: 8 A100 NVSwitch", 300)
NVIDIA = [
    _dle("NVIDIA DLE PyTorch ResNet-50, DGX-1 V100 16GB, FP32, 1 → 8", 367, 2855, 112,
         _dgx("DGX-1: 8 V100 NVLink", 150), DDP, "fit: SIGMA_GPU", _DLE_PT + "DGX-1 16GB, FP32 367 → 2,855 images/s"),
    _dle("NVIDIA DLE PyTorch ResNet-50, DGX A100 80GB, TF32, 1 → 8", 938, 7248, 256, _A100, DDP, "blind",
         _DLE_PT + "DGX A100 80GB, TF32 938 → 7,248 images/s"),
    _dle("NVIDIA DLE PyTorch ResNet-50, DGX A100 80GB, AMP, 1 → 8", 2470, 16621, 256, _A100, DDP, "blind",
         _DLE_PT + "DGX A100 80GB, AMP 2,470 → 16,621 images/s"),
    _dle("NVIDIA DLE TensorFlow + Horovod ResNet-50, DGX A100 40GB, AMP, 1 → 8", 2375, 17400, 256, _A100,
         HOROVOD_2018, "blind", _DLE_TF),
]

CASES = [GOYAL, *HOROVOD, *NVIDIA]


DGX_A100_CORES = 128  # 2 × AMD EPYC 7742, 64 cores each (NVIDIA DGX A100 datasheet)
DLE_AMP = NVIDIA[2]  # PyTorch, DGX A100 80GB, AMP: published 84.1%, predicted 97.1% without input


def with_input(case: Case, per_core_images_per_s: float, *, cores: int = DGX_A100_CORES,
               per_worker_batch: int = 256) -> dict:
    """``case`` predicted with the input term of the cost model: each node decodes on its cores but one per
    GPU rank (the ranks' own threads), at ``per_core_images_per_s`` each, nothing fitted.

    Returns:
        ``per_core_images_per_s``, ``node_images_per_s`` (X = (cores − G)·rate), ``predicted_without``,
        ``predicted_with``, ``published``, ``bound`` at ``case.world_size``, and ``break_even_per_core``:
        the per-core rate below which the case turns input-bound.
    """
    from benchmarks.costmodel import InputSide

    gpus = case.network.gpus_per_node

    def predict(rate: float) -> dict:
        rows = project(case.workload(), [case.world_size], case.network, base_world_size=case.base_world_size,
                       per_worker_batch=per_worker_batch, algorithm=case.algorithm, fusion=case.fusion,
                       sigma=SIGMA_GPU, interference=INTERFERENCE,
                       input_side=InputSide(images_per_s_per_node=(cores - gpus) * rate))
        return rows[-1]

    row = predict(per_core_images_per_s)
    # below this rate the node's pipeline cannot feed its G workers: T_in = G·n/X equals the step without input
    break_even = gpus * per_worker_batch / row["train_step_s"] / (cores - gpus)
    return {"name": case.name, "per_core_images_per_s": per_core_images_per_s,
            "node_images_per_s": (cores - gpus) * per_core_images_per_s, "predicted_without": float(case.predict()),
            "predicted_with": float(row["efficiency"]), "published": case.published_efficiency, "bound": row["bound"],
            "break_even_per_core": float(break_even)}


# Per-core input rates for the DGX A100 AMP case, each measured by `harness bench input` on this project's
# 2-core machine (results/input-pipeline/, the CSV named), ResNet-50's 224x224 training crops of JPEGs.
# (label, images/s per core, source)
INPUT_RATES = [
    ("this pipeline, 47 kB JPEGs (q90)", 691.0, "bench-input-2core.csv, harness, W = 1"),
    ("this pipeline, 95 kB JPEGs (q98)", 477.7, "bench-input-2core-q98.csv, harness, W = 1"),
    ("tf.data (MLPerf's input), 95 kB JPEGs", 406.6, "bench-input-2core-q98.csv, tfdata, W = 1"),
    ("Pillow full decode + resize, 95 kB JPEGs", 343.1, "bench-input-2core-q98.csv, harness-pillow, W = 1"),
]


def input_rows(rates: list[tuple[str, float, str]] = INPUT_RATES, case: Case = DLE_AMP) -> list[dict]:
    """``case`` (default the DGX A100 AMP miss) predicted with the input term at each measured per-core rate
    (:func:`with_input`): one row per rate, ``label``, ``source`` and ``with_input``'s fields."""
    return [{"label": label, "source": source, **with_input(case, rate)} for label, rate, source in rates]


def rate_for_published(case: Case = DLE_AMP) -> float:
    """The per-core input rate (images/s) at which :func:`with_input` predicts ``case``'s published efficiency."""
    return _solve(lambda rate: with_input(case, rate)["predicted_with"], case.published_efficiency, 1.0,
                  with_input(case, 1.0)["break_even_per_core"])


def input_markdown(rows: list[dict] | None = None) -> str:
    """The DLE AMP case with and without the input term, per measured per-core rate (Markdown)."""
    rows = rows if rows is not None else input_rows()
    first = rows[0]
    lines = [f"{first['name']} with the input term: 128 cores less one per GPU rank decode at a measured "
             f"per-core rate (nothing fitted). It turns input-bound below {first['break_even_per_core']:.1f} "
             f"images/s per core; the published {100 * first['published']:.1f}% would need "
             f"{rate_for_published():.1f}.", "",
             "| per-core rate measured for | images/s per core | per node | predicted without | with input | "
             "published | bound by |", "| --- | --: | --: | --: | --: | --: | --- |"]
    lines += [f"| {r['label']} | {r['per_core_images_per_s']:.1f} | {r['node_images_per_s']:,.0f} | "
              f"{100 * r['predicted_without']:.1f}% | {100 * r['predicted_with']:.1f}% | {100 * r['published']:.1f}% | "
              f"{r['bound']} |" for r in rows]
    return "\n".join(lines)


def validation_rows(cases: list[Case] = CASES) -> list[dict]:
    """One row per case: ``name``, ``role``, ``published``, ``predicted`` and ``error`` (points, signed)."""
    rows = []
    for case in cases:
        predicted = case.predict()
        rows.append({"name": case.name, "role": case.role, "published": case.published_efficiency,
                     "predicted": predicted, "error": 100 * (predicted - case.published_efficiency)})
    return rows


def _solve(fn, target: float, lo: float, hi: float) -> float:
    """Bisection for fn(x) = target with fn increasing in x on [lo, hi]."""
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fn(mid) < target else (lo, mid)
    return (lo + hi) / 2


def fit_constants(iterations: int = 3) -> dict:
    """Re-derive the fitted constants from their fitting cases (see the module docstring).

    σ by bisection so the V100 case is matched, γ by least squares over the two TCP cases (grid of
    0.001), the RoCE fraction by bisection on VGG-16; repeated ``iterations`` times since each depends
    a little on the others.

    Returns:
        ``SIGMA_GPU``, ``INTERFERENCE``, ``ROCE_EFFICIENCY``.
    """
    v100, tcp_cases, vgg = NVIDIA[0], HOROVOD[:2], HOROVOD[2]
    sigma, gamma, roce = SIGMA_GPU, INTERFERENCE, ROCE_EFFICIENCY
    grid = np.arange(0.0, 0.301, 0.001)
    for _ in range(iterations):
        sigma = _solve(lambda s: -v100.predict(sigma=s, interference=gamma), -v100.published_efficiency, 0.0, 0.2)
        errors = [sum((c.predict(sigma=sigma, interference=g) - c.published_efficiency) ** 2 for c in tcp_cases)
                  for g in grid]
        gamma = float(grid[int(np.argmin(errors))])
        roce = _solve(lambda f: vgg.predict(sigma=sigma, interference=gamma, network=dataclasses.replace(
            vgg.network, inter_efficiency=f)), vgg.published_efficiency, 0.05, 1.0)
    return {"SIGMA_GPU": sigma, "INTERFERENCE": gamma, "ROCE_EFFICIENCY": roce}


def validation_markdown(rows: list[dict] | None = None) -> str:
    """The README's validation table: every case, its role, published and predicted efficiency, error."""
    rows = rows if rows is not None else validation_rows()
    lines = ["| case | role | published | predicted | error (points) |", "| --- | --- | --: | --: | --: |"]
    lines += [f"| {r['name']} | {r['role']} | {100 * r['published']:.1f}% | {100 * r['predicted']:.1f}% | "
              f"{r['error']:+.1f} |" for r in rows]
    errors = [abs(r["error"]) for r in rows]
    blind = [abs(r["error"]) for r in rows if r["role"] == "blind"]
    lines += ["", f"Mean absolute error: {sum(errors) / len(errors):.2f} points over all {len(rows)} cases, "
                  f"{sum(blind) / len(blind):.2f} over the {len(blind)} predicted blind."]
    return "\n".join(lines)


if __name__ == "__main__":
    import csv
    import sys

    table, inputs = validation_rows(), input_rows()
    print(validation_markdown(table) + "\n\n" + input_markdown(inputs))
    if len(sys.argv) > 1:  # python -m benchmarks.published results/costmodel/validation.csv
        for path, rows in ((sys.argv[1], table), (sys.argv[1].replace(".csv", "-input.csv"), inputs)):
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
