"""Communication sections of the scaling report: busbw, measured vs predicted, projection and its plot.

The measured model comes from the smallest world size's run (:func:`benchmarks.projection.from_run`:
compute = its median step time, gradient bytes, readiness from ``layers.json`` when present, σ from its
step times); the measured link is α and B fitted (ring model) to Horovod's allreduce times at the
largest measured k. The projection uses the same defaults and flags as ``harness project``
(:class:`benchmarks.projection.Projection`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.costmodel import INTERFERENCE, Fusion, Network, fit_link, project
from benchmarks.projection import Projection, from_run, resolve_sigma


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
    """The smallest world size's run as a model (:func:`benchmarks.projection.from_run`), or None.

    Returns None when no run has ``model_bytes`` (or a ``layers.json``).
    """
    k0 = int(scaling["world_size"].iloc[0])
    candidates = [r for r in runs if r["world_size"] == k0] + [r for r in runs if r["world_size"] != k0]
    for run in candidates:
        try:
            model = from_run(run["run_dir"])
        except ValueError:
            continue
        compute = float(scaling.loc[scaling["world_size"] == model["world_size"], "step_time_s_median"].iloc[0])
        device = run.get("device", {})
        return {**model, "workload": model["workload"].with_compute(compute), "compute_s": compute,
                "model_bytes": model["workload"].model_bytes, "base_world_size": model["world_size"],
                "device_type": device.get("type", "cpu"), "device_name": device.get("name", "cpu")}
    return None


def predicted_vs_measured(scaling, model: dict, link: dict, hosts: int, contention: dict[int, float] | None = None):
    """Measured weak-scaling efficiency beside the cost model's, calibrated on this machine.

    The link is the fitted α and B (achieved, so efficiency 1); the fitted α holds on average half a
    Horovod cycle of waiting for the next tick, which is taken out since the model places ticks itself.
    σ is the run's measured spread (0 when too few steps).

    Args:
        contention: k → f_k, how much slower one worker computes when k workers share the machine(s)
            (:func:`shared_host_contention`; 1 for every k when each worker has a device of its own).
            Compute at k is T_c·f_k.
    """
    import pandas as pd

    ks = [int(k) for k in scaling["world_size"]]
    per_node = max(1, max(ks) // max(hosts, 1))
    cycle = link["cycle_ms"] * 1e-3
    alpha = max(0.0, link["alpha_s"] - cycle / 2 / (2 * max(1, link["world_size"] - 1)))
    net = Network(per_node, link["bandwidth"], link["bandwidth"], alpha, alpha, name="fitted link")
    factors = [(contention or {}).get(k, 1.0) for k in ks]
    steps = [project(model["workload"].with_compute(model["workload"].compute_s * f), [k], net, base_world_size=k,
                     algorithm="ring", fusion=Fusion(link["fusion_bytes"], cycle),
                     sigma=model.get("sigma_measured") or 0.0, interference=INTERFERENCE)[0]["step_time_s"]
             for k, f in zip(ks, factors)]
    return pd.DataFrame({"world_size": ks, "measured_efficiency": scaling["efficiency"].to_numpy(),
                         "predicted_efficiency": [steps[0] / t for t in steps], "contention": factors,
                         "predicted_step_time_s": steps,
                         "measured_step_time_s": scaling["step_time_s_median"].to_numpy()})


def shared_host_contention(runs: list[dict]) -> dict[int, float] | None:
    """f_k = per-worker images/s of the no-communication loop at the smallest k / at k.

    Measured by ``bench throughput --peers plain`` in the same ranks (:mod:`benchmarks.peers`): k
    processes that never communicate, so what they lose is the host's cores and memory bandwidth
    being shared, not the network. None unless every world size has such a run.
    """
    rates: dict[int, list[float]] = {}
    for run in runs:
        plain = run.get("peers", {}).get("plain")
        if plain:
            rates.setdefault(int(run["world_size"]), []).append(plain["images_per_second_per_worker"])
    ks = sorted({int(r["world_size"]) for r in runs})
    if not ks or set(rates) != set(ks):
        return None
    base = float(np.mean(rates[ks[0]]))
    return {k: base / float(np.mean(rates[k])) for k in ks}


def projection_table(model: dict, setting: Projection):
    """Projected step time, efficiency (vs ``setting.base_world_size``) and images/s; σ and its source."""
    import pandas as pd

    sigma, source = resolve_sigma(setting, model.get("sigma"))
    rows = setting.run(model["workload"], sigma=sigma, per_worker_batch=model["per_worker_batch"])
    table = pd.DataFrame(rows)[["world_size", "nodes", "step_time_s", "comm_s", "exposed_comm_s", "efficiency",
                                "images_per_second", "efficiency_vs_compute"]]
    return table, rows, sigma, source


def plot_report_projection(rows: list[dict], scaling, model: dict, setting: Projection, sigma: float,
                           out: Path) -> Path:
    """``projection.png`` with the validation anchors and this report's measured points."""
    from benchmarks.projection_plot import anchor_points, plot_projection

    measured = [{"world_size": int(r.world_size), "efficiency": float(r.efficiency),
                 "images_per_second": float(r.images_per_second)} for r in scaling.itertuples()]
    w = model["workload"]
    name, kind = model["device_name"], model["device_type"]
    where = kind + (f" ({name})" if name != kind else "")
    return plot_projection(rows, out / "projection.png", anchors=anchor_points(), measured=measured,
                           measured_label=f"measured here ({where}, vs k0 = {measured[0]['world_size']})",
                           title=f"{w.name}: {w.model_bytes / 2**20:.2f} MiB, {w.compute_s * 1e3:.2f} ms compute "
                                 f"measured on {where}, n = {model['per_worker_batch']}; projected on "
                                 f"{setting.net().name}",
                           note=setting.describe() + f"; σ = {sigma:.3g}; readiness {model['readiness']}")


def render(busbw, link, comparison, projection, target: Projection, model: dict | None) -> list[str]:
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
                  "The cost model calibrated on this machine: compute = the smallest world size's step time × "
                  "`contention` (f_k: how much slower a worker computes when k of them share the host's cores, "
                  "measured by `bench throughput --peers plain`, k processes that never communicate; 1 where "
                  "no such run was given), link = the fit above.", "",
                  comparison.to_markdown(index=False, floatfmt=".4g"), ""]
    if projection is not None:
        table, sigma, source = projection
        cpu = model.get("device_type", "cpu") == "cpu"
        lines += [f"## Projection to {int(table['world_size'].max())} GPUs", "",
                  *([f"**Projected from a CPU step time** ({model['compute_s'] * 1e3:.2f} ms on "
                     f"{model.get('device_name', 'cpu')}): "
                     "a GPU computes the same step many times faster, so communication weighs more there and this "
                     "projection is optimistic for GPUs. Measure on the GPUs you will use "
                     "(`harness bench throughput --device cuda`) for a projection worth quoting.", ""] if cpu else []),
                  f"The measured model ({model['model_bytes'] / 2**20:.2f} MiB of gradients in "
                  f"{len(model['workload'].sizes_bytes)} tensors, readiness {model['readiness']}, "
                  f"{model['compute_s'] * 1e3:.2f} ms compute per step, n = {model['per_worker_batch']}, "
                  f"σ = {sigma:.3g}, {source}) on {target.describe()}. Same defaults and flags as `harness project` "
                  "(`harness project --help`); the model is `benchmarks/costmodel.py`, validated in docs/benchmarks.md.", "",
                  table.to_markdown(index=False, floatfmt=".4g"), "", "![projection](projection.png)", ""]
    return lines
