"""Named networks for projections, with the achieved fraction of line rate of each link type.

Achieved bandwidth = line rate × a fraction per link type (what a ring allreduce really gets):

* ``TCP_EFFICIENCY`` = 0.5 over Ethernet with TCP (NCCL sockets, Gloo): this project's estimate, half the
  line rate; Zhang et al. 2020 (arXiv 2006.10103) found Horovod over TCP leaves most of a 100 Gbit/s link
  idle. The published TCP cases do not pin it: their communication fits inside backward at any
  fraction ≥ 0.4 (``published.py``).
* ``ROCE_EFFICIENCY`` = 0.759 over RDMA (RoCE, InfiniBand): fitted on Horovod's VGG-16 at 512 GPUs
  (``published.py``), the one published case whose step is communication-bound.
* ``NVLINK_EFFICIENCY`` = 0.77 inside a server (NVLink, NVSwitch, PCIe): this project's estimate from
  NCCL's allreduce bus bandwidth of about 230 GB/s on DGX A100, whose NVLink line rate is 300 GB/s per
  GPU per direction.

Latency α per message step: 25 µs over TCP, 10 µs over RDMA, 5 µs inside a server (this project's
order-of-magnitude estimates for NCCL/Gloo of the time).
"""

from __future__ import annotations

from benchmarks.costmodel import GBIT, Network

TCP_EFFICIENCY = 0.5
ROCE_EFFICIENCY = 0.759
NVLINK_EFFICIENCY = 0.77
GB = 1e9

NETWORKS = {
    "nvlink-100gbe-roce": Network(8, 100 * GBIT, 300 * GB, 10e-6, 5e-6, ROCE_EFFICIENCY, NVLINK_EFFICIENCY,
                                  "8 GPUs/node on NVLink (300 GB/s), 100 Gbit/s RoCE per node"),
    "nvlink-200g-ib": Network(8, 200 * GBIT, 300 * GB, 10e-6, 5e-6, ROCE_EFFICIENCY, NVLINK_EFFICIENCY,
                              "8 GPUs/node on NVLink (300 GB/s), 200 Gbit/s InfiniBand per node"),
    "nvlink-25gbe-tcp": Network(8, 25 * GBIT, 300 * GB, 25e-6, 5e-6, TCP_EFFICIENCY, NVLINK_EFFICIENCY,
                                "8 GPUs/node on NVLink (300 GB/s), 25 Gbit/s Ethernet (TCP) per node"),
    "pcie-25gbe-tcp": Network(4, 25 * GBIT, 15.75 * GB, 25e-6, 5e-6, TCP_EFFICIENCY, NVLINK_EFFICIENCY,
                              "4 GPUs/node on PCIe 3.0 (15.75 GB/s), 25 Gbit/s Ethernet (TCP) per node"),
}
DEFAULT_NETWORK = "nvlink-100gbe-roce"
DEFAULT_WORLD_SIZES = (8, 16, 32, 64, 128, 256)
DEFAULT_BASE_WORLD_SIZE = 1
DEFAULT_ALGORITHM = "nccl"  # Horovod's default (HOROVOD_HIERARCHICAL_ALLREDUCE=0): NCCL picks ring or tree


def named(name: str) -> Network:
    """One of :data:`NETWORKS`.

    Raises:
        ValueError: an unknown name.
    """
    if name not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {name!r}")
    return NETWORKS[name]
