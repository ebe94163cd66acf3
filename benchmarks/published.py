"""Published scaling results the cost model is checked against, with their parameters and sources.

Each case names what the source states and what this project assumed where the source is silent;
``harness project`` and the tests compare the model's prediction with the published efficiency.
"""

from __future__ import annotations

import dataclasses

from benchmarks.costmodel import GBIT, Network

MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Case:
    """A published weak-scaling result.

    Attributes:
        name: short label.
        source: paper and where in it.
        model_bytes: fp32 gradient bytes per step (parameters × 4).
        compute_s: seconds of forward + backward per step on one worker.
        network: links of the cluster.
        algorithm: allreduce algorithm used.
        fusion_bytes: gradient bucket size.
        base_world_size, world_size: efficiency is measured between these.
        published_efficiency: the source's figure (0-1).
        assumptions: what the source does not state and this case assumes.
    """

    name: str
    source: str
    model_bytes: float
    compute_s: float
    network: Network
    algorithm: str
    fusion_bytes: float
    base_world_size: int
    world_size: int
    published_efficiency: float
    assumptions: str


# Goyal et al.: 29 h on 8 P100 and 1 h on 256 for 90 epochs of 1,281,167 images at n = 32:
# 29·3600 / (90·5004) = 0.232 s per step at k = 8 and 3600 / (90·156) = 0.256 s at k = 256.
GOYAL = Case(
    name="Goyal 2017, ResNet-50, 8→256 P100",
    source="Goyal et al. 2017, arXiv 1706.02677: abstract and §5 (29 h → 1 h, ~90% from 8 to 256 GPUs); §4 "
           "(8 P100 per Big Basin server with NVLink, 50 Gbit/s Ethernet, intra-server reduction + inter-server "
           "recursive halving-doubling)",
    model_bytes=25_557_032 * 4, compute_s=0.232,
    network=Network(gpus_per_node=8, inter_bandwidth=50 * GBIT, intra_bandwidth=20e9, latency_s=10e-6),
    algorithm="hierarchical", fusion_bytes=4 * MIB, base_world_size=8, world_size=256,
    published_efficiency=0.90,
    assumptions="compute per step = the 8-GPU step time (0.232 s); NVLink ~20 GB/s per GPU; α = 10 µs; "
                "per-layer pipelining modelled as 4 MiB buckets; inter-node stage modelled as a ring "
                "(halving-doubling has the same bandwidth term)",
)

# Horovod paper: 128 P100 (32 servers × 4), 25 Gbit/s RoCE, NCCL ring, tensor fusion.
_HOROVOD_NET = Network(gpus_per_node=4, inter_bandwidth=25 * GBIT, intra_bandwidth=10e9, latency_s=10e-6)
_HOROVOD_NOTE = ("per-GPU compute from single-P100 tf_cnn_benchmarks-era throughput at batch 64 "
                 "(this project's estimate, not from the paper); PCIe ~10 GB/s inside a server; α = 10 µs; "
                 "64 MiB fusion buffer (Horovod's 2018 default)")
HOROVOD = [
    Case(name=f"Horovod 2018, {model}, 4→128 P100",
         source="Sergeev & Del Balso 2018, arXiv 1802.05799, §5 and Fig. 6 (88% at 128 GPUs for Inception V3 "
                "and ResNet-101, 68% for VGG-16; 25 Gbit/s RoCE, 4 P100 per server)",
         model_bytes=params * 4, compute_s=64 / images_per_s, network=_HOROVOD_NET, algorithm="ring",
         fusion_bytes=64 * MIB, base_world_size=4, world_size=128, published_efficiency=eff,
         assumptions=_HOROVOD_NOTE)
    for model, params, images_per_s, eff in (
        ("Inception V3", 23_851_784, 140.0, 0.88),
        ("ResNet-101", 44_549_160, 125.0, 0.88),
        ("VGG-16", 138_357_544, 140.0, 0.68),
    )
]

CASES = [GOYAL, *HOROVOD]
