"""Communication sections of the scaling report: busbw, measured vs predicted, projection to 256 GPUs.

The measured model is the smallest world size's step time (compute) and gradient bytes from the
throughput or training runs; the measured link is α and B fitted (ring model) to Horovod's
allreduce times at the largest measured k.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks.costmodel import GBIT, Network, fit_link, project


@dataclasses.dataclass(frozen=True)
class ProjectionNetwork:
    """The network a report projects onto (CLI: ``harness report --gpus-per-node ...``)."""

    gpus_per_node: int = 8
    inter_gbps: float = 100.0
    intra_gbps: float = 1200.0
    latency_us: float = 10.0
    algorithm: str = "hierarchical"
    world_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256)

    def network(self) -> Network:
        """As a cost-model :class:`~benchmarks.costmodel.Network`."""
        return Network(self.gpus_per_node, self.inter_gbps * GBIT, self.intra_gbps * GBIT,
                       self.latency_us * 1e-6, self.latency_us * 0.5e-6)


def busbw_table(allreduce_runs: list[dict]):
    """One row per (impl, k, size): ``time_s``, ``algbw_gbps``, ``busbw_gbps`` (10⁹ bytes/s)."""
    import pandas as pd

    rows = [r for run in allreduce_runs for r in run["results"]]
    table = pd.DataFrame(rows)[["impl", "world_size", "size_bytes", "time_s", "algbw_gbps", "busbw_gbps"]]
    return table.sort_values(["impl", "world_size", "size_bytes"], ignore_index=True)


def plot_busbw(table, out: Path) -> Path:
    """``busbw.png``: busbw against message size, one line per implementation and k > 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for (impl, k), group in table[table["world_size"] > 1].groupby(["impl", "world_size"]):
        ax.plot(group["size_bytes"], group["busbw_gbps"], "o-", label=f"{impl}, k={k}")
    ax.set(xscale="log", xlabel="message size (bytes)", ylabel="busbw (GB/s)", title="Allreduce bus bandwidth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "busbw.png", dpi=120)
    plt.close(fig)
    return out / "busbw.png"


def measured_link(allreduce_runs: list[dict]) -> dict | None:
    """α (s) and B (bytes/s) fitted to Horovod's times at the largest measured k > 1.

    Returns:
        ``alpha_s``, ``bandwidth``, ``world_size``, ``fusion_bytes``, ``cycle_ms``; or ``{"error": ...}``
        when the times do not fit; None without a run at k > 1.
    """
    runs = [r for r in allreduce_runs if r["world_size"] > 1]
    if not runs:
        return None
    run = max(runs, key=lambda r: r["world_size"])
    rows = [r for r in run["results"] if r["impl"] == "horovod"]
    try:
        alpha, bandwidth = fit_link([r["size_bytes"] for r in rows], [r["time_s"] for r in rows], run["world_size"])
    except ValueError as exc:
        return {"error": f"no link fitted from Horovod at k = {run['world_size']}: {exc} (measure larger sizes)"}
    return {"alpha_s": alpha, "bandwidth": bandwidth, "world_size": run["world_size"],
            "fusion_bytes": run.get("fusion_threshold_bytes", 128 * 2**20), "cycle_ms": run.get("cycle_time_ms", 1.0)}


def measured_model(scaling, runs: list[dict]) -> dict | None:
    """Compute time (s, the smallest k's median step time) and gradient bytes, or None."""
    with_bytes = [r for r in runs if r.get("model_bytes")]
    if not with_bytes:
        return None
    return {"compute_s": float(scaling["step_time_s_median"].iloc[0]), "model_bytes": int(with_bytes[0]["model_bytes"]),
            "base_world_size": int(scaling["world_size"].iloc[0])}


def predicted_vs_measured(scaling, model: dict, link: dict, hosts: int):
    """Measured weak-scaling efficiency beside the cost model's, calibrated on this machine."""
    import pandas as pd

    ks = [int(k) for k in scaling["world_size"]]
    per_node = max(1, max(ks) // max(hosts, 1))
    net = Network(per_node, link["bandwidth"], link["bandwidth"], link["alpha_s"], link["alpha_s"])
    # The fitted α already holds Horovod's cycle time (small messages wait for the next cycle).
    rows = project(model["model_bytes"], model["compute_s"], ks, net, algorithm="ring",
                   fusion_bytes=link["fusion_bytes"], cycle_s=0.0)
    return pd.DataFrame({"world_size": ks, "measured_efficiency": scaling["efficiency"].to_numpy(),
                         "predicted_efficiency": [r["efficiency"] for r in rows],
                         "predicted_step_time_s": [r["step_time_s"] for r in rows],
                         "measured_step_time_s": scaling["step_time_s_median"].to_numpy()})


def projection_table(model: dict, target: ProjectionNetwork):
    """Projected step time and efficiency for ``target.world_sizes`` (efficiency vs the smallest)."""
    import pandas as pd

    rows = project(model["model_bytes"], model["compute_s"], list(target.world_sizes), target.network(),
                   algorithm=target.algorithm)
    return pd.DataFrame(rows)[["world_size", "nodes", "step_time_s", "comm_s", "exposed_comm_s", "efficiency",
                               "efficiency_vs_compute"]]


def render(busbw, link, comparison, projection, target: ProjectionNetwork, model: dict | None) -> list[str]:
    """Markdown lines for the communication sections present."""
    lines = []
    if busbw is not None:
        lines += ["## Allreduce bandwidth", "",
                  "busbw = algbw · 2(k−1)/k (nccl-tests convention); time is the slowest rank's, median over "
                  "iterations. k = 1 has no communication (busbw 0).", "",
                  busbw.to_markdown(index=False, floatfmt=".4g"), "", "![busbw](busbw.png)", ""]
    if link and "error" in link:
        lines += [link["error"] + ".", ""]
    elif link:
        lines += [f"Fitted link (ring model, Horovod, k = {link['world_size']}): α = {link['alpha_s'] * 1e6:.1f} µs, "
                  f"B = {link['bandwidth'] / 1e9:.3f} GB/s. α includes Horovod's cycle time "
                  f"({link['cycle_ms']:g} ms): a small tensor waits for the next cycle.", ""]
    if comparison is not None:
        lines += ["## Measured vs predicted efficiency", "",
                  "The cost model calibrated on this machine: compute = the smallest world size's step time, "
                  "link = the fit above. Where ranks share cores, CPU contention (which the model does not "
                  "include) makes the measurement lower than the prediction.", "",
                  comparison.to_markdown(index=False, floatfmt=".4g"), ""]
    if projection is not None:
        lines += ["## Projection to 256 GPUs", "",
                  f"The measured model ({model['model_bytes'] / 2**20:.2f} MiB of gradients, "
                  f"{model['compute_s'] * 1e3:.2f} ms compute per step) on {target.gpus_per_node} GPUs per node, "
                  f"{target.inter_gbps:g} Gbit/s per node, {target.intra_gbps:g} Gbit/s inside a node, "
                  f"α = {target.latency_us:g} µs, {target.algorithm} allreduce. Efficiency is relative to "
                  f"k = {target.world_sizes[0]}.", "",
                  projection.to_markdown(index=False, floatfmt=".4g"), ""]
    return lines
