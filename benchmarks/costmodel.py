"""Step-time model of synchronous data-parallel SGD on Horovod: readiness, fusion, α-β allreduce, stragglers.

One step on k workers, every term measured or sourced (``benchmarks/published.py`` holds the cases it
is checked against, docs/benchmarks.md "The cost model against published runs" the table):

1. **Compute and gradient readiness.** Forward + backward take T_c seconds on one worker. Gradient
   tensors become ready in backward order at times r_i·T_c: measured per parameter with backward hooks at
   k = 1 (:mod:`benchmarks.layer_trace`), or, for a published network without a trace, from its layer
   table with backward time split by layer FLOPs (:mod:`benchmarks.layers`). Without either, the bytes
   are spread uniformly over the last ``backward_fraction`` of the step (:meth:`Workload.uniform`).
2. **Interference.** Backward slows down while an allreduce is in flight (NCCL kernels and copies
   share the GPU and PCIe; Horovod's hooks): backward takes (1 + γ·u) times longer, u the share of
   backward with an allreduce in flight (computed once without the term, then applied). Zhang et al.
   2020 (arXiv 2006.10103) measured compute time growing by up to 15% under Horovod; γ = ``INTERFERENCE``
   is fitted (``published.py``) and lies inside that bound.
3. **Stragglers.** A synchronous step waits for the slowest of k workers. Each worker's compute time is
   modelled as T_c·(1 + σ·Z), Z standard normal and independent across workers and steps, so compute at
   k workers is T_c·(1 + σ·E[max of k Z]) (:func:`expected_max_normal`; 0 at k = 1, 1.42 at 8, 2.87 at
   256). σ is the coefficient of variation of one worker's step time: measured from a run's per-step
   times (:func:`step_time_spread`), or for GPUs ``SIGMA_GPU``, fitted in ``published.py``. It is
   extrapolated to k through the normal order statistic (no heavier tail is assumed).
4. **Fusion, as Horovod does it** (``horovod/common/controller.cc``, docs/tensor-fusion.rst). A
   background thread wakes every cycle time; at each tick the tensors ready on every rank are fused
   in ready order into buffers of at most the fusion threshold (a larger tensor goes alone; threshold 0
   disables fusion) and allreduced one after another; one allreduce is in flight at a time, and the
   next tick comes a cycle later or when the last allreduce ends, whichever is later. Each tick pays a
   negotiation of 2⌈log2 k⌉·α (the response cache's bit-vector allreduce, Horovod ≥ 0.16). Horovod
   0.28's defaults are a 128 MiB threshold and a 1 ms cycle; before 0.21, 64 MiB and 5 ms (release notes
   of v0.21.0, PR #2468). A cycle time of 0 models engines that send a bucket as soon as it is full
   (PyTorch DDP's 25 MiB buckets; Caffe2/Gloo's per-layer allreduce in Goyal et al., threshold 0).
5. **Allreduce** of S bytes over k workers, per-message latency α (s), achieved bandwidth B (bytes/s):

   * ring: T = 2(k−1)·α + 2(k−1)/k·S/B
   * recursive halving-doubling: T = 2⌈log2 k⌉·α + 2(k−1)/k·S/B (Rabenseifner; Goyal et al. §4)
   * hierarchical (N nodes × G): intra-node reduce-scatter, G parallel inter-node rings of S/G sharing
     the NIC, intra-node allgather: T = 2[(G−1)·α_intra + (G−1)/G·S/B_intra] + 2(N−1)·α + 2(N−1)/N·S/B;
     ``hierarchical-hd`` uses halving-doubling between nodes (2⌈log2 N⌉·α), as Goyal et al. §4 did
   * nccl: the faster of ring and halving-doubling for each message, standing in for NCCL ≥ 2.4, which
     picks ring or (double binary) tree by size: log-depth latency for small messages, the ring's
     bandwidth for large ones. NCCL 2.0-2.3 (the 2018 cases) had rings only.

   B is the line rate times an achieved fraction per network type (:class:`Network`): fitted to a
   measured allreduce (:func:`fit_link`, which also gives α) or, per link type, the fractions in
   :mod:`benchmarks.networks` (RDMA fitted on a published case; TCP and NVLink stated estimates).
   A flat ring over several nodes crosses each NIC once per direction: it runs at the NIC's B with
   k steps of α.

6. **Shared hosts** (calibration runs only). Where k workers share one machine's cores and memory
   bandwidth, as this project's CPU runs and emulated hosts do, one worker computes f_k times slower
   at k than alone. f_k is measured, not modelled: the per-worker rate of k processes that never
   communicate (``bench throughput --peers plain``) at the smallest k over that at k
   (:func:`benchmarks.report_comm.shared_host_contention`); compute at k is then T_c·f_k. A GPU
   worker has its device to itself: f_k = 1, and projections use none.

7. **Input** (:class:`InputSide`, optional). Each node's input pipeline delivers X images/s (measured with
   ``harness bench input``, or the user's figure) to its G workers, each of which consumes n images a
   step: the pipeline needs T_in = G·n/X seconds a step. The pipeline runs ahead of the step
   (prefetching), so it only costs time where it is the slowest stage. A shared filesystem delivers B
   bytes/s to all nodes together; k workers read k·n images of S bytes a step: T_storage = k·n·S/B.

Step time = max(compute, end of the last allreduce, T_in, T_storage). Weak-scaling efficiency at k is
the per-worker throughput relative to a stated base world size k0: E(k) = step(k0) / step(k) (k0 = 1 by
default, a single worker without communication).

References:
    Thakur, Rabenseifner & Gropp 2005 (collective cost models). Patarasuk & Yuan 2009 (ring).
    Goyal et al. 2017, arXiv 1706.02677, §4. Sergeev & Del Balso 2018, arXiv 1802.05799 (Horovod).
    Gumbel 1958 / Royston 1982 (expected normal order statistics).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

ALGORITHMS = ("nccl", "ring", "hd", "hierarchical", "hierarchical-hd")
GBIT = 1e9 / 8  # bytes per second in one Gbit/s
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Network:
    """Links of a cluster.

    Attributes:
        gpus_per_node: G, workers per node.
        inter_bandwidth: line rate of each node's network link (NIC), bytes/s.
        intra_bandwidth: line rate of one worker's link inside a node, bytes/s.
        latency_s: α, seconds per message step across nodes.
        intra_latency_s: α_intra, seconds per message step inside a node.
        inter_efficiency, intra_efficiency: achieved fraction of line rate (0-1].
        name: a label for tables and plots.
    """

    gpus_per_node: int
    inter_bandwidth: float
    intra_bandwidth: float
    latency_s: float = 10e-6
    intra_latency_s: float = 5e-6
    inter_efficiency: float = 1.0
    intra_efficiency: float = 1.0
    name: str = "custom"

    def __post_init__(self):
        if not (isinstance(self.gpus_per_node, int) and self.gpus_per_node >= 1):
            raise ValueError(f"gpus_per_node must be an integer >= 1, got {self.gpus_per_node!r}")
        for name in ("inter_bandwidth", "intra_bandwidth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 bytes/s, got {getattr(self, name)!r}")
        for name in ("latency_s", "intra_latency_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 s, got {getattr(self, name)!r}")
        for name in ("inter_efficiency", "intra_efficiency"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")

    @property
    def inter_achieved(self) -> float:
        """Achieved bytes/s between nodes."""
        return self.inter_bandwidth * self.inter_efficiency

    @property
    def intra_achieved(self) -> float:
        """Achieved bytes/s inside a node."""
        return self.intra_bandwidth * self.intra_efficiency


@dataclasses.dataclass(frozen=True)
class Fusion:
    """How gradients are grouped and sent: threshold (bytes) and cycle time (s); cycle 0 = bucket-full."""

    threshold_bytes: float = 128 * MIB
    cycle_s: float = 1e-3

    def __post_init__(self):
        if self.threshold_bytes < 0 or self.cycle_s < 0:
            raise ValueError(f"fusion threshold and cycle time must be >= 0, got {self.threshold_bytes!r}, "
                             f"{self.cycle_s!r}")


HOROVOD_DEFAULT = Fusion(128 * MIB, 1e-3)  # Horovod >= 0.21 defaults (0.28.1 here)
HOROVOD_2018 = Fusion(64 * MIB, 5e-3)    # Horovod < 0.21 defaults (the 2018 paper)
DDP = Fusion(25 * MIB, 0.0)              # torch DistributedDataParallel bucket_cap_mb = 25
PER_LAYER = Fusion(0.0, 0.0)             # each layer's gradient alone, as soon as it is ready
# Fitted in benchmarks/published.py (fit_constants), each on cases docs/benchmarks.md names; the other cases are blind.
SIGMA_GPU = 0.0192    # σ of a GPU worker's step time: NVIDIA DLE DGX-1 V100 FP32 1 → 8 (communication < 1%)
INTERFERENCE = 0.099  # γ: the two Horovod 2018 TCP cases at 128 GPUs (both 88%; comm fits inside backward)


@dataclasses.dataclass(frozen=True)
class Workload:
    """One worker's step: gradient tensors in ready order and when each is ready.

    Attributes:
        sizes_bytes: gradient bytes of each tensor (or layer), in the order they become ready.
        ready_fraction: when each is ready, as a fraction of ``compute_s`` (non-decreasing, last = 1).
        compute_s: T_c, forward + backward seconds on one worker.
        name: a label.
    """

    sizes_bytes: tuple[float, ...]
    ready_fraction: tuple[float, ...]
    compute_s: float
    name: str = "model"

    def __post_init__(self):
        ready = np.asarray(self.ready_fraction, dtype=float)
        if not self.compute_s > 0 or len(self.sizes_bytes) != len(ready) or not len(ready):
            raise ValueError(f"need compute_s > 0 and one ready time per tensor, got {self.compute_s!r}, "
                             f"{len(self.sizes_bytes)} sizes, {len(ready)} ready times")
        if np.any(np.diff(ready) < -1e-12) or ready.min() < 0 or ready.max() > 1 + 1e-9:
            raise ValueError("ready_fraction must be non-decreasing within [0, 1]")

    @property
    def model_bytes(self) -> float:
        """Total gradient bytes per step."""
        return float(sum(self.sizes_bytes))

    @classmethod
    def uniform(cls, model_bytes: float, compute_s: float, *, backward_fraction: float = 2 / 3,
                pieces: int = 64, name: str = "model") -> "Workload":
        """``model_bytes`` in ``pieces`` equal tensors ready evenly over the last ``backward_fraction``."""
        if not model_bytes > 0 or not 0 <= backward_fraction <= 1:
            raise ValueError(f"need model_bytes > 0 and backward_fraction in [0, 1], got {model_bytes!r}, "
                             f"{backward_fraction!r}")
        ready = 1 - backward_fraction + backward_fraction * np.arange(1, pieces + 1) / pieces
        return cls(tuple([model_bytes / pieces] * pieces), tuple(ready), compute_s, name)

    def with_compute(self, compute_s: float) -> "Workload":
        """The same readiness with another compute time."""
        return dataclasses.replace(self, compute_s=compute_s)


def ring_time(size_bytes: float, k: int, *, alpha: float, bandwidth: float) -> float:
    """Ring allreduce: 2(k−1)·α + 2(k−1)/k·S/B seconds (0 for k = 1)."""
    return 0.0 if k == 1 else 2 * (k - 1) * alpha + 2 * (k - 1) / k * size_bytes / bandwidth


def halving_doubling_time(size_bytes: float, k: int, *, alpha: float, bandwidth: float) -> float:
    """Recursive halving-doubling: 2·⌈log2 k⌉·α + 2(k−1)/k·S/B seconds (0 for k = 1)."""
    return 0.0 if k == 1 else 2 * math.ceil(math.log2(k)) * alpha + 2 * (k - 1) / k * size_bytes / bandwidth


def hierarchical_time(size_bytes: float, nodes: int, gpus_per_node: int, net: Network, inter=ring_time) -> float:
    """Intra-node reduce-scatter, G parallel inter-node allreduces of S/G through one NIC (``inter``: ring or
    halving-doubling), intra-node allgather (s)."""
    g = gpus_per_node
    intra = 0.0 if g == 1 else (g - 1) * net.intra_latency_s + (g - 1) / g * size_bytes / net.intra_achieved
    return 2 * intra + inter(size_bytes, nodes, alpha=net.latency_s, bandwidth=net.inter_achieved)


def layout(k: int, net: Network) -> tuple[int, int]:
    """(nodes, workers per node) for k workers packed onto nodes of G."""
    per_node = min(k, net.gpus_per_node)
    return math.ceil(k / per_node), per_node


def allreduce_time(size_bytes: float, k: int, net: Network, algorithm: str = "ring") -> float:
    """Seconds to allreduce ``size_bytes`` over k workers with ``algorithm`` at achieved bandwidth.

    Raises:
        ValueError: unknown algorithm, k < 1 or negative size.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if not (isinstance(k, int) and k >= 1) or size_bytes < 0:
        raise ValueError(f"need k >= 1 and size >= 0, got k={k!r}, size={size_bytes!r}")
    nodes, per_node = layout(k, net)
    if algorithm.startswith("hierarchical"):
        inter = halving_doubling_time if algorithm.endswith("-hd") else ring_time
        return hierarchical_time(size_bytes, nodes, per_node, net, inter)
    alpha, bandwidth = ((net.intra_latency_s, net.intra_achieved) if nodes == 1
                        else (net.latency_s, net.inter_achieved))
    if algorithm == "nccl":
        return min(ring_time(size_bytes, k, alpha=alpha, bandwidth=bandwidth),
                   halving_doubling_time(size_bytes, k, alpha=alpha, bandwidth=bandwidth))
    formula = ring_time if algorithm == "ring" else halving_doubling_time
    return formula(size_bytes, k, alpha=alpha, bandwidth=bandwidth)


@functools.lru_cache(maxsize=None)
def expected_max_normal(k: int) -> float:
    """E[max of k independent standard normals]: 0 for k = 1, 1/√π for 2, ≈ 2.87 for 256 (numerical)."""
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k == 1:
        return 0.0
    x = np.linspace(-9.0, 9.0, 18001)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return float(np.sum(x * k * pdf * cdf ** (k - 1)) * (x[1] - x[0]))


def fuse(sizes: np.ndarray, threshold: float) -> list[float]:
    """Greedy fusion in order into buffers of at most ``threshold`` bytes (a larger tensor goes alone)."""
    buffers, current = [], 0.0
    for size in sizes:
        if current and current + size > threshold:
            buffers.append(current)
            current = 0.0
        current += size
    return buffers + ([current] if current else [])


def _buckets(sizes, ready, threshold):
    """Bucket-full engines (cycle 0): (bytes, ready time) of each bucket closed at >= threshold bytes."""
    out, current = [], 0.0
    for size, at in zip(sizes, ready):
        current += size
        if current >= threshold:
            out.append((current, at))
            current = 0.0
    return out + ([(current, ready[-1])] if current else [])


def _horovod(sizes, ready, fusion, send, negotiate):
    """Cycle ticks: everything ready at a tick is fused and sent, one allreduce at a time; returns the end."""
    end, tick, i, n = 0.0, 0.0, 0, len(sizes)
    while i < n:
        if ready[i] > tick:  # idle ticks, one per cycle, until the next tensor is ready
            tick += math.ceil((ready[i] - tick) / fusion.cycle_s - 1e-9) * fusion.cycle_s
        j = int(np.searchsorted(ready, tick + 1e-12, side="right"))
        start = tick + negotiate
        for size in fuse(sizes[i:j], fusion.threshold_bytes):
            end = send(max(start, end), size)
        tick, i = max(tick + fusion.cycle_s, end), j  # the loop sleeps out the cycle or runs late
    return end


def _communicate(sizes, ready, k, net, algorithm, fusion) -> list[tuple[float, float]]:
    """(start, end) of every allreduce of one step, in order."""
    spans = []

    def send(start, size):
        spans.append((start, start + allreduce_time(size, k, net, algorithm)))
        return spans[-1][1]

    if fusion.cycle_s > 0:
        nodes = layout(k, net)[0]
        _horovod(sizes, ready, fusion, send, 2 * math.ceil(math.log2(k)) * (
            net.latency_s if nodes > 1 else net.intra_latency_s))
    else:
        end = 0.0
        for size, at in _buckets(sizes, ready, fusion.threshold_bytes):
            end = send(max(end, at), size)
    return spans


def _overlap(spans, lo: float, hi: float) -> float:
    """Fraction of [lo, hi] covered by the (disjoint) spans."""
    covered = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in spans)
    return covered / (hi - lo) if hi > lo else 0.0


def step_time(workload: Workload, k: int, net: Network, *, algorithm: str = "ring", fusion: Fusion = HOROVOD_DEFAULT,
              sigma: float = 0.0, interference: float = INTERFERENCE) -> dict:
    """Predicted step time of data-parallel SGD on k workers (the module docstring's model).

    Args:
        workload: one worker's compute and gradient readiness.
        k: world size.
        net: the links, with achieved fractions.
        algorithm: one of :data:`ALGORITHMS`.
        fusion: threshold and cycle time (:data:`HOROVOD_DEFAULT` = Horovod 0.28's defaults).
        sigma: σ, coefficient of variation of one worker's compute time (stragglers).
        interference: γ, backward slows by (1 + γ·u) where u is the share of backward with an allreduce
            in flight (:data:`INTERFERENCE`).

    Returns:
        ``step_time_s``, ``compute_s`` (with stragglers and interference), ``comm_s`` (sum of allreduce
        times), ``exposed_comm_s`` (step − compute), ``messages`` (allreduces per step),
        ``overlap`` (u).

    Raises:
        ValueError: out-of-range arguments.
    """
    if sigma < 0 or interference < 0:
        raise ValueError(f"sigma and interference must be >= 0, got {sigma!r}, {interference!r}")
    compute = workload.compute_s * (1 + sigma * expected_max_normal(k))
    if k == 1:
        return {"step_time_s": compute, "compute_s": compute, "comm_s": 0.0, "exposed_comm_s": 0.0, "messages": 0,
                "overlap": 0.0}
    sizes = np.asarray(workload.sizes_bytes, dtype=float)
    ready = np.asarray(workload.ready_fraction, dtype=float) * compute
    spans = _communicate(sizes, ready, k, net, algorithm, fusion)
    u = _overlap(spans, ready[0], compute)
    if interference and u:  # one fixed-point step: stretch backward, send again
        stretch = 1 + interference * u
        ready = ready[0] + (ready - ready[0]) * stretch
        compute = ready[0] + (compute - ready[0]) * stretch
        spans = _communicate(sizes, ready, k, net, algorithm, fusion)
    total = max(compute, spans[-1][1])
    return {"step_time_s": total, "compute_s": compute, "comm_s": float(sum(b - a for a, b in spans)),
            "exposed_comm_s": total - compute, "messages": len(spans), "overlap": u}


@dataclasses.dataclass(frozen=True)
class InputSide:
    """What feeds the workers (term 7 of the module docstring); None leaves a term out.

    Attributes:
        images_per_s_per_node: X, images/s one node's input pipeline delivers (decode + augment).
        storage_bytes_per_s: B, the shared filesystem's aggregate read bandwidth, bytes/s.
        image_bytes: S, bytes of one stored image (ImageNet's JPEGs: about 110 kB).

    Raises:
        ValueError: a value <= 0, or only one of ``storage_bytes_per_s`` and ``image_bytes``.
    """

    images_per_s_per_node: float | None = None
    storage_bytes_per_s: float | None = None
    image_bytes: float | None = None

    def __post_init__(self):
        for name in ("images_per_s_per_node", "storage_bytes_per_s", "image_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if (self.storage_bytes_per_s is None) != (self.image_bytes is None):
            raise ValueError("storage_bytes_per_s and image_bytes go together (the read rate needs both)")

    def times(self, k: int, per_node: int, per_worker_batch: int) -> tuple[float | None, float | None]:
        """(T_in, T_storage) seconds per step at k workers, ``per_node`` of them on a node, n images each."""
        t_in = per_node * per_worker_batch / self.images_per_s_per_node if self.images_per_s_per_node else None
        t_storage = (k * per_worker_batch * self.image_bytes / self.storage_bytes_per_s
                     if self.storage_bytes_per_s else None)
        return t_in, t_storage


def _with_input(row: dict, k: int, per_node: int, per_worker_batch: int | None, side: InputSide | None) -> dict:
    """``row`` with the input terms: ``train_step_s`` (compute and allreduce), ``input_s``, ``storage_s``,
    ``step_time_s`` the slowest of them, and ``bound`` (what sets the step)."""
    train = row["step_time_s"]
    t_in, t_storage = side.times(k, per_node, per_worker_batch) if side and per_worker_batch else (None, None)
    stages = {"compute": row["compute_s"], "communication": train, "input": t_in or 0.0, "storage": t_storage or 0.0}
    bound = max(stages, key=lambda name: (stages[name], name == "compute"))
    if bound == "communication" and row["exposed_comm_s"] <= 0:
        bound = "compute"
    return {**row, "train_step_s": train, "input_s": t_in, "storage_s": t_storage,
            "step_time_s": max(stages.values()), "bound": bound}


def project(workload: Workload, world_sizes: list[int], net: Network, *, base_world_size: int = 1,
            per_worker_batch: int | None = None, input_side: InputSide | None = None, **kwargs) -> list[dict]:
    """:func:`step_time` for each world size, with weak-scaling efficiency relative to ``base_world_size``.

    Args:
        input_side: the input pipeline's and the filesystem's rates (term 7); needs ``per_worker_batch``.

    Returns:
        One dict per world size (sorted): ``world_size``, ``nodes``, ``gpus_per_node``, the
        :func:`step_time` keys (``step_time_s`` the slowest stage), ``train_step_s`` (compute and
        allreduce), ``input_s`` and ``storage_s`` (None without that term), ``bound`` (``compute``,
        ``communication``, ``input`` or ``storage``), ``efficiency`` (step(k0) / step(k)),
        ``efficiency_vs_compute`` (T_c / step(k)), ``base_world_size`` and, with ``per_worker_batch``,
        ``images_per_second``.

    Raises:
        ValueError: empty ``world_sizes``, a world size or base < 1, or ``input_side`` without ``per_worker_batch``.
    """
    if not world_sizes or min(world_sizes) < 1 or base_world_size < 1:
        raise ValueError(f"need world sizes >= 1 and a base >= 1, got {world_sizes!r}, base {base_world_size!r}")
    if input_side and not per_worker_batch:
        raise ValueError("the input terms need per_worker_batch (images per worker per step)")

    def at(k: int) -> dict:
        nodes, per_node = layout(k, net)
        row = {"world_size": k, "nodes": nodes, "gpus_per_node": per_node, **step_time(workload, k, net, **kwargs)}
        return _with_input(row, k, per_node, per_worker_batch, input_side)

    base = at(base_world_size)["step_time_s"]
    rows = []
    for k in sorted(set(world_sizes)):
        row = at(k)
        row.update(efficiency=base / row["step_time_s"], efficiency_vs_compute=workload.compute_s / row["step_time_s"],
                   base_world_size=base_world_size)
        if per_worker_batch:
            row["images_per_second"] = k * per_worker_batch / row["step_time_s"]
        rows.append(row)
    return rows


def step_time_spread(step_times_s) -> float:
    """σ: robust coefficient of variation of one worker's step times, 1.4826·MAD / median.

    Raises:
        ValueError: fewer than 5 step times.
    """
    times = np.asarray(step_times_s, dtype=float)
    if times.size < 5:
        raise ValueError(f"need at least 5 step times to estimate a spread, got {times.size}")
    median = np.median(times)
    return float(1.4826 * np.median(np.abs(times - median)) / median)


def fit_link(sizes_bytes, times_s, k: int) -> tuple[float, float]:
    """Fit ring-model α (s) and achieved B (bytes/s) to measured allreduce times at world size k > 1.

    Least squares of t = a + b·S (weighted by 1/t), then α = a / (2(k−1)) and B = 2(k−1)/(k·b).

    Raises:
        ValueError: k < 2, fewer than two sizes, or a non-increasing fit (b <= 0).
    """
    sizes, times = np.asarray(sizes_bytes, dtype=float), np.asarray(times_s, dtype=float)
    if k < 2 or len(sizes) < 2:
        raise ValueError(f"need k >= 2 and at least two sizes, got k={k}, {len(sizes)} sizes")
    b, a = np.polyfit(sizes, times, 1, w=1 / times)  # relative errors: small sizes set α, large set B
    if b <= 0:
        raise ValueError("allreduce time does not grow with size: cannot fit a bandwidth")
    return max(a, 0.0) / (2 * (k - 1)), 2 * (k - 1) / (k * b)
