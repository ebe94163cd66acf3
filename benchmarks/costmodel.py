"""Communication cost model: α-β allreduce times, gradient buckets overlapping backward, projections.

Allreduce of S bytes over k workers with per-message latency α (s) and link bandwidth B (bytes/s):

* ring:                      T = 2(k−1)·α + 2(k−1)/k · S/B
* recursive halving-doubling: T = 2·⌈log2 k⌉·α + 2(k−1)/k · S/B   (Rabenseifner; Goyal et al. §4)
* hierarchical (k = N nodes × G per node): intra-node reduce-scatter, inter-node ring allreduce of
  each GPU's S/G shard (G rings in parallel, sharing the node's network link), intra-node allgather:
  T = 2[(G−1)·α_intra + (G−1)/G · S/B_intra] + 2(N−1)·α + 2(N−1)/N · S/B

B is each node's network bandwidth (its NIC), B_intra a GPU's bandwidth inside a node. A flat ring
or halving-doubling spanning several nodes crosses each node's NIC once per direction, so it runs
at B with k steps of latency instead of N. One
step: forward (1 − f)·T_c, then backward f·T_c, during which gradients become ready uniformly in
bytes; they are allreduced in buckets of the fusion threshold, one at a time, each starting when
it is ready and the previous one is done. Step time = max(T_c, end of the last allreduce).

Weak-scaling efficiency of a world size is the step time at the smallest world size projected
divided by its own (per-worker throughput ratio); ``efficiency_vs_compute`` divides T_c instead.

References:
    Thakur, Rabenseifner & Gropp 2005 (collective cost models). Patarasuk & Yuan 2009 (ring).
    Goyal et al. 2017, arXiv 1706.02677, §4. Sergeev & Del Balso 2018, arXiv 1802.05799 (Horovod).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

ALGORITHMS = ("ring", "hd", "hierarchical")
GBIT = 1e9 / 8  # bytes per second in one Gbit/s


@dataclasses.dataclass(frozen=True)
class Network:
    """Links of a cluster.

    Attributes:
        gpus_per_node: G, workers per node.
        inter_bandwidth: B, bytes/s of each node's network link (NIC).
        intra_bandwidth: B_intra, bytes/s per worker inside a node.
        latency_s: α, seconds per message across nodes.
        intra_latency_s: α_intra, seconds per message inside a node.
    """

    gpus_per_node: int
    inter_bandwidth: float
    intra_bandwidth: float
    latency_s: float = 10e-6
    intra_latency_s: float = 5e-6

    def __post_init__(self):
        if not (isinstance(self.gpus_per_node, int) and self.gpus_per_node >= 1):
            raise ValueError(f"gpus_per_node must be an integer >= 1, got {self.gpus_per_node!r}")
        for name in ("inter_bandwidth", "intra_bandwidth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 bytes/s, got {getattr(self, name)!r}")
        for name in ("latency_s", "intra_latency_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 s, got {getattr(self, name)!r}")


def ring_time(size_bytes: float, k: int, *, alpha: float, bandwidth: float) -> float:
    """Ring allreduce: 2(k−1)·α + 2(k−1)/k·S/B seconds (0 for k = 1)."""
    return 0.0 if k == 1 else 2 * (k - 1) * alpha + 2 * (k - 1) / k * size_bytes / bandwidth


def halving_doubling_time(size_bytes: float, k: int, *, alpha: float, bandwidth: float) -> float:
    """Recursive halving-doubling: 2·⌈log2 k⌉·α + 2(k−1)/k·S/B seconds (0 for k = 1)."""
    return 0.0 if k == 1 else 2 * math.ceil(math.log2(k)) * alpha + 2 * (k - 1) / k * size_bytes / bandwidth


def hierarchical_time(size_bytes: float, nodes: int, gpus_per_node: int, net: Network) -> float:
    """Intra-node reduce-scatter, G parallel inter-node rings of S/G through one NIC, intra-node allgather (s)."""
    g = gpus_per_node
    intra = 0.0 if g == 1 else (g - 1) * net.intra_latency_s + (g - 1) / g * size_bytes / net.intra_bandwidth
    return 2 * intra + ring_time(size_bytes, nodes, alpha=net.latency_s, bandwidth=net.inter_bandwidth)


def layout(k: int, net: Network) -> tuple[int, int]:
    """(nodes, workers per node) for k workers packed onto nodes of G."""
    per_node = min(k, net.gpus_per_node)
    return math.ceil(k / per_node), per_node


def allreduce_time(size_bytes: float, k: int, net: Network, algorithm: str = "ring") -> float:
    """Seconds to allreduce ``size_bytes`` over k workers with ``algorithm``.

    Raises:
        ValueError: unknown algorithm, k < 1 or negative size.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if not (isinstance(k, int) and k >= 1) or size_bytes < 0:
        raise ValueError(f"need k >= 1 and size >= 0, got k={k!r}, size={size_bytes!r}")
    nodes, per_node = layout(k, net)
    if algorithm == "hierarchical":
        return hierarchical_time(size_bytes, nodes, per_node, net)
    alpha, bandwidth = ((net.intra_latency_s, net.intra_bandwidth) if nodes == 1
                        else (net.latency_s, net.inter_bandwidth))
    formula = ring_time if algorithm == "ring" else halving_doubling_time
    return formula(size_bytes, k, alpha=alpha, bandwidth=bandwidth)


def bucket_sizes(model_bytes: float, fusion_bytes: float) -> list[float]:
    """Gradient buckets of at most ``fusion_bytes`` (Horovod's fusion threshold), in ready order."""
    if model_bytes <= 0 or fusion_bytes <= 0:
        raise ValueError(f"model_bytes and fusion_bytes must be > 0, got {model_bytes!r}, {fusion_bytes!r}")
    full, rest = divmod(model_bytes, fusion_bytes)
    return [fusion_bytes] * int(full) + ([rest] if rest > 0 else [])


def step_time(model_bytes: float, compute_s: float, k: int, net: Network, *, algorithm: str = "ring",
              backward_fraction: float = 2 / 3, fusion_bytes: float = 128 * 2**20, cycle_s: float = 0.0) -> dict:
    """Predicted step time of data-parallel SGD on k workers.

    Args:
        model_bytes: S, gradient bytes per step (parameters × 4 for fp32).
        compute_s: T_c, forward + backward seconds on one worker (no communication).
        k: world size.
        net: the links.
        algorithm: ``ring``, ``hd`` or ``hierarchical``.
        backward_fraction: f, share of T_c spent in backward (gradients appear during it).
        fusion_bytes: bucket size (Horovod default 128 MiB; 64 MiB in 2018).
        cycle_s: extra wait per bucket (Horovod's cycle time, default 1 ms).

    Returns:
        ``step_time_s``, ``comm_s`` (sum of allreduce times), ``exposed_comm_s`` (step − compute),
        ``buckets``.

    Raises:
        ValueError: on out-of-range arguments.
    """
    if not compute_s > 0 or not 0 <= backward_fraction <= 1:
        raise ValueError(f"need compute_s > 0 and backward_fraction in [0, 1], got {compute_s!r}, {backward_fraction!r}")
    buckets = bucket_sizes(model_bytes, fusion_bytes)
    # written so the last bucket is ready exactly at the end of backward (compute_s)
    ready = compute_s - backward_fraction * compute_s * (1 - np.cumsum(buckets) / np.sum(buckets))
    end = comm = 0.0
    for size, ready_at in zip(buckets, ready):
        duration = allreduce_time(size, k, net, algorithm) + (cycle_s if k > 1 else 0.0)
        end = max(end, ready_at) + duration
        comm += duration
    total = max(compute_s, end)
    return {"step_time_s": total, "comm_s": comm, "exposed_comm_s": total - compute_s, "buckets": len(buckets)}


def project(model_bytes: float, compute_s: float, world_sizes: list[int], net: Network, **kwargs) -> list[dict]:
    """:func:`step_time` for each world size, with weak-scaling efficiency.

    ``efficiency`` is relative to the smallest world size in ``world_sizes``;
    ``efficiency_vs_compute`` to compute alone (a single worker).

    Returns:
        One dict per world size (sorted): ``world_size``, ``nodes``, ``gpus_per_node``,
        ``step_time_s``, ``comm_s``, ``exposed_comm_s``, ``efficiency``, ``efficiency_vs_compute``.
    """
    if not world_sizes:
        raise ValueError("world_sizes is empty")
    rows = []
    for k in sorted(world_sizes):
        nodes, per_node = layout(k, net)
        rows.append({"world_size": k, "nodes": nodes, "gpus_per_node": per_node,
                     **step_time(model_bytes, compute_s, k, net, **kwargs)})
    base = rows[0]["step_time_s"]
    for row in rows:
        row["efficiency"] = base / row["step_time_s"]
        row["efficiency_vs_compute"] = compute_s / row["step_time_s"]
    return rows


def fit_link(sizes_bytes, times_s, k: int) -> tuple[float, float]:
    """Fit ring-model α (s) and B (bytes/s) to measured allreduce times at world size k > 1.

    Least squares of t = a + b·S, then α = a / (2(k−1)) and B = 2(k−1)/(k·b).

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
