"""The scaling report: ``harness report RUN_DIR... --out DIR``.

Reads each run directory's ``summary.json`` (and ``records.jsonl`` for the run record), builds
one row per world size k and writes ``report.md``, ``scaling.csv`` and PNG plots.

Weak scaling (per-worker batch n fixed, global batch kn grows with k), relative to the smallest
world size measured, k0:

.. math:: E(k) = \\frac{X(k)/k}{X(k_0)/k_0}, \\qquad S(k) = \\frac{X(k)}{X(k_0)}

with X the total throughput in images/s summed from every rank's own step times.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.projection import Projection
from benchmarks.report_comm import (
    busbw_table,
    measured_link,
    measured_model,
    plot_busbw,
    plot_report_projection,
    predicted_vs_measured,
    projection_table,
    shared_host_contention,
)
from benchmarks.report_comm import render as render_comm
from harness.runtime.errors import ConfigError
from harness.runtime.faults import describe_failures, read_failures
from harness.runtime.records import RECORDS, SUMMARY, read_records

REPORT_FILES = ("report.md", "scaling.csv", "throughput.png", "efficiency.png", "spread.csv", "busbw.csv",
                "busbw.png", "predicted.csv", "projection.csv", "projection.png", "peers.csv",
                "phases.csv", "elastic.png")
SCALING_KINDS = ("train", "throughput", "summary")  # "summary": train runs written before kinds were named
REQUIRED = {
    "scaling": ("world_size", "global_batch", "per_worker_batch", "images_per_second", "step_time_s_median"),
    "allreduce": ("world_size", "results"),
    "elastic": ("world_size", "world_sizes", "per_worker_batch"),
}


def load_run(run_dir: str | Path) -> dict:
    """One run's summary joined with its ``run`` record.

    Raises:
        ConfigError: missing directory, a run without ``summary.json`` (failed or interrupted),
            or malformed files.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run directory")
    summary_path = run_dir / SUMMARY
    if not summary_path.exists():
        failures = read_failures(run_dir)
        if failures:
            raise ConfigError(f"{run_dir}: the run failed: {describe_failures(failures)}")
        hint = "records but no summary: the run failed or was interrupted" if (run_dir / RECORDS).exists() \
            else "no summary.json or records.jsonl: not a harness run directory"
        raise ConfigError(f"{run_dir}: {hint}")
    try:
        summary = json.loads(summary_path.read_text())
        records = read_records(run_dir / RECORDS) if (run_dir / RECORDS).exists() else []
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"{run_dir}: malformed run files: {exc}") from None
    group = "allreduce" if summary.get("kind") == "allreduce" else "elastic" if summary.get("elastic") else "scaling"
    missing = [key for key in REQUIRED[group] if key not in summary]
    if missing:
        raise ConfigError(f"{summary_path}: missing {', '.join(missing)}")
    run = next((r for r in records if r["kind"] == "run"), {})
    # Runs written before devices were recorded ran on the CPU in fp32.
    return {"threads_per_rank": run.get("threads_per_rank"), "hosts": run.get("hosts", []),
            "device": run.get("device", {"type": "cpu", "name": "cpu"}), "precision": run.get("precision", "fp32"),
            **summary, "run_dir": str(run_dir)}


def scaling_table(runs: list[dict]):
    """One row per world size: throughput, speedup and weak-scaling efficiency vs the smallest k.

    Runs with the same k are averaged (``runs`` counts them).

    Returns:
        A pandas DataFrame sorted by ``world_size`` with columns ``world_size``, ``runs``,
        ``global_batch``, ``per_worker_batch``, ``images_per_second``,
        ``images_per_second_per_worker``, ``step_time_s_median``, ``speedup``, ``efficiency``,
        ``data_wait_share`` (the slowest rank's share of step time spent waiting for data; NaN where
        not recorded), ``test_accuracy``.

    Raises:
        ConfigError: no runs, runs that mix device types or precisions, or runs with different
            per-worker batch, model or backend (not a weak-scaling series).
    """
    import pandas as pd

    if not runs:
        raise ConfigError("no runs to report")
    for what, key in (("device types", lambda r: r["device"].get("type", "cpu")),
                      ("precisions", lambda r: r["precision"])):
        values = sorted({key(r) for r in runs})
        if len(values) > 1:
            raise ConfigError(f"runs mix {what} ({', '.join(values)}): one scaling table compares one device type "
                              "and one precision; report them separately")
    for key in ("per_worker_batch", "model", "backend"):
        values = {r.get(key) for r in runs}
        if len(values) > 1:
            raise ConfigError(f"runs differ in {key} ({', '.join(map(str, sorted(values, key=str)))}): "
                             "a weak-scaling report needs one per-worker batch, model and backend")
    frame = pd.DataFrame(runs)
    if "test_accuracy" not in frame:
        frame["test_accuracy"] = np.nan
    frame["data_wait_share"] = [float((r.get("input") or {}).get("data_wait_share", np.nan)) for r in runs]
    table = frame.groupby("world_size", as_index=False).agg(
        runs=("run_dir", "count"), global_batch=("global_batch", "first"),
        per_worker_batch=("per_worker_batch", "first"),
        images_per_second=("images_per_second", "mean"), step_time_s_median=("step_time_s_median", "mean"),
        data_wait_share=("data_wait_share", "mean"),
        test_accuracy=("test_accuracy", "mean")).sort_values("world_size", ignore_index=True)
    table["images_per_second_per_worker"] = table["images_per_second"] / table["world_size"]
    base = table.iloc[0]
    table["speedup"] = table["images_per_second"] / base["images_per_second"]
    table["efficiency"] = table["images_per_second_per_worker"] / base["images_per_second_per_worker"]
    columns = ["world_size", "runs", "global_batch", "per_worker_batch", "images_per_second",
               "images_per_second_per_worker", "step_time_s_median", "speedup", "efficiency", "data_wait_share",
               "test_accuracy"]
    return table[columns]


def plot_scaling(table, out: Path) -> list[Path]:
    """``throughput.png`` (with the ideal linear line) and ``efficiency.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, x = table["world_size"].to_numpy(), table["images_per_second"].to_numpy()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(k, x, "o-", label="measured")
    ax.plot(k, x[0] * k / k[0], "--", color="grey", label="ideal (linear)")
    ax.set(xlabel="workers k", ylabel="images/s (total)", title="Throughput vs workers", xticks=k)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(k, 100 * table["efficiency"].to_numpy(), "o-")
    ax.axhline(100, ls="--", color="grey")
    ax.set(xlabel="workers k", ylabel="weak-scaling efficiency (%)", ylim=(0, 110), xticks=k,
           title=f"Efficiency vs k0 = {k[0]}")
    fig.tight_layout()
    fig.savefig(out / "efficiency.png", dpi=120)
    plt.close(fig)
    return [out / "throughput.png", out / "efficiency.png"]


def render_markdown(table, runs: list[dict]) -> str:
    """The report text: what was run, the scaling table, and how efficiency is defined."""
    first = runs[0]
    k0 = int(table["world_size"].iloc[0])
    shown = table.copy()
    shown["efficiency"] = (100 * shown["efficiency"]).map("{:.1f}%".format)
    shown["test_accuracy"] = shown["test_accuracy"].map(lambda a: "" if np.isnan(a) else f"{a:.4f}")
    shown["data_wait_share"] = shown["data_wait_share"].map(lambda a: "" if np.isnan(a) else f"{100 * a:.1f}%")
    device = first["device"]
    hosts = max(runs, key=lambda r: r["world_size"])
    lines = [
        "# Scaling report", "",
        f"Device **{device.get('type', 'cpu')}** ({device.get('name', 'cpu')}"
        + (f", {device['count_per_node']} per host" if device.get("type") == "cuda" else "")
        + f"), precision **{first['precision']}**; hosts × ranks of the largest run: "
        + (", ".join(f"{h} × {n}" for h, n in hosts.get("ranks_per_host", {}).items()) or "not recorded") + ".", "",
        "Per-rank step times and their spread are in `spread.csv`.", "",
        f"Backend **{first.get('backend')}**, model **{first.get('model')}**, dataset **{first.get('dataset')}**, "
        f"per-worker batch n = {first['per_worker_batch']}, threads per rank: "
        f"{sorted({r.get('threads_per_rank') for r in runs}, key=str)}.", "",
        shown.to_markdown(index=False, floatfmt=".4g"), "",
        f"Weak-scaling efficiency E(k) = (X(k)/k) / (X(k0)/k0), relative to the smallest world size measured, "
        f"k0 = {k0}; X is total images/s, summed over ranks from each rank's own median step time "
        "(not rank 0 × k).", "",
        "data_wait_share: the slowest rank's seconds blocked on its next batch over its step time plus "
        "those seconds; above 5% a run is input-bound (its throughput is the input pipeline's, not the model's).",
        "",
        "![throughput](throughput.png) ![efficiency](efficiency.png)", "",
        "## Runs", "",
    ]
    lines += [f"- `{r['run_dir']}`: k = {r['world_size']}, kn = {r['global_batch']}, "
              f"{r['images_per_second']:.1f} images/s, step time median {r['step_time_s_median'] * 1e3:.1f} ms"
              + (f", per-rank medians {', '.join(f'{t * 1e3:.1f}' for t in r['step_time_s_per_rank'])} ms "
                 f"(spread {100 * r.get('step_time_s_spread', 0):.1f}%)" if r.get("step_time_s_per_rank") else "")
              + (f", test accuracy {r['test_accuracy']:.4f}" if r.get("test_accuracy") is not None else "")
              + input_line(r.get("input"))
              + (f"; hosts × ranks: {', '.join(f'{h} × {n}' for h, n in r['ranks_per_host'].items())}"
                 if r.get("ranks_per_host") else "")
              for r in sorted(runs, key=lambda r: r["world_size"])]
    return "\n".join(lines) + "\n"


def input_line(account: dict | None) -> str:
    """A run's input side in words: data-wait share (input-bound or not), pipeline vs compute images/s."""
    if not account:
        return ""
    text = (f"; data wait {100 * account['data_wait_share']:.1f}% of step time (slowest rank)"
            + (", **input-bound**" if account.get("input_bound") else ""))
    if account.get("pipeline_images_per_s_per_rank"):
        text += (f", pipeline {account['pipeline_images_per_s_per_rank']:.0f} images/s per rank "
                 f"({account['data_workers']} decode workers) vs compute "
                 f"{account.get('compute_images_per_s_per_rank') or float('nan'):.0f}")
    if account.get("bad_images_skipped"):
        text += f", {account['bad_images_skipped']} bad images skipped"
    return text


def peers_table(runs: list[dict]):
    """Harness against its peers (``bench throughput --peers``), one row per world size and side.

    Each side's weak-scaling efficiency is relative to its own rate at the smallest k measured, so the
    harness and a peer are compared at the same k in the same processes.

    Returns:
        A pandas DataFrame with ``world_size``, ``side`` (``harness`` or the peer's name),
        ``images_per_second`` (total), ``images_per_second_per_worker``, ``efficiency`` and
        ``harness_ratio`` (harness / side, per worker), or None when no run measured peers.
    """
    import pandas as pd

    rows = []
    for run in (r for r in runs if r.get("peers")):
        rows.append({"world_size": run["world_size"], "side": "harness",
                     "images_per_second": run["images_per_second"]})
        rows += [{"world_size": run["world_size"], "side": name, "images_per_second": peer["images_per_second"]}
                 for name, peer in run["peers"].items()]
    if not rows:
        return None
    table = pd.DataFrame(rows).groupby(["side", "world_size"], as_index=False, sort=False).mean()
    table["images_per_second_per_worker"] = table["images_per_second"] / table["world_size"]
    smallest = table.sort_values("world_size").groupby("side")["images_per_second_per_worker"].transform("first")
    table["efficiency"] = table["images_per_second_per_worker"] / smallest.reindex(table.index)
    harness = table[table["side"] == "harness"].set_index("world_size")["images_per_second_per_worker"]
    table["harness_ratio"] = table["world_size"].map(harness) / table["images_per_second_per_worker"]
    table["peer_first"] = table["side"] != "harness"  # harness first within each k
    return table.sort_values(["world_size", "peer_first"], ignore_index=True).drop(columns="peer_first")


def render_peers(table) -> list[str]:
    """The report section for :func:`peers_table` (empty when there were no peers)."""
    if table is None:
        return []
    shown = table.copy()
    shown["efficiency"] = (100 * shown["efficiency"]).map("{:.1f}%".format)
    return ["", "## Against the peers", "",
            "The same model, batch, precision and threads, measured right after the harness in the same ranks "
            "(`bench throughput --peers`): plain = the framework's loop without communication, horovod = a bare "
            "`horovod.torch` loop, ddp = torch DistributedDataParallel. Efficiency is each side's own weak-scaling "
            "efficiency against its smallest k; harness_ratio = harness / side, per worker.", "",
            shown.to_markdown(index=False, floatfmt=".4g")]


def spread_table(runs: list[dict]):
    """Per-rank median step times of each run, and their spread (max − min)/median."""
    import pandas as pd

    return pd.DataFrame([{"world_size": r["world_size"], "run_dir": r["run_dir"],
                          "step_time_s_per_rank": " ".join(f"{t:.4g}" for t in r.get("step_time_s_per_rank", [])),
                          "spread": r.get("step_time_s_spread", np.nan)}
                         for r in sorted(runs, key=lambda r: r["world_size"])])


def write_report(run_dirs: list[str], out: str | Path, *, overwrite: bool = False,
                 target: Projection = Projection()) -> Path:
    """Write the report files into ``out``; returns the path of ``report.md``.

    Training and throughput runs make the scaling table and plots; allreduce runs the busbw table;
    with both, the measured-vs-predicted table; a run with ``model_bytes`` the projection
    (``projection.csv`` and ``projection.png``, :class:`benchmarks.projection.Projection` defaults).

    Raises:
        ConfigError: bad run directories, or report files already in ``out`` without ``overwrite``.
    """
    runs = [load_run(d) for d in run_dirs]
    elastic_runs = [r for r in runs if r.get("elastic")]  # k changed mid-run: a report of its own, not a k point
    scaling_runs = [r for r in runs if r.get("kind", "train") in SCALING_KINDS and not r.get("elastic")]
    allreduce_runs = [r for r in runs if r.get("kind") == "allreduce"]
    scaling = scaling_table(scaling_runs) if scaling_runs else None
    out = Path(out)
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already has {', '.join(existing)}; pass overwrite or choose a new directory",
                          fields=("overwrite",))
    out.mkdir(parents=True, exist_ok=True)
    text = "# Scaling report\n\nNo training or throughput runs of a fixed k given.\n"
    busbw = comparison = projection = model = None
    if scaling is not None:
        scaling.to_csv(out / "scaling.csv", index=False)
        spread_table(scaling_runs).to_csv(out / "spread.csv", index=False)
        plot_scaling(scaling, out)
        text = render_markdown(scaling, scaling_runs)
        peers = peers_table(scaling_runs)
        if peers is not None:
            peers.to_csv(out / "peers.csv", index=False)
            text += "\n".join(render_peers(peers)) + "\n"
        model = measured_model(scaling, scaling_runs)
    if allreduce_runs:
        busbw = busbw_table(allreduce_runs)
        busbw.to_csv(out / "busbw.csv", index=False)
        plot_busbw(busbw, out)
    link = measured_link(allreduce_runs) if allreduce_runs else None
    if model and link and "error" not in link and len(scaling) > 1:
        hosts = max(len(r.get("hosts") or [1]) for r in scaling_runs)
        comparison = predicted_vs_measured(scaling, model, link, hosts, shared_host_contention(scaling_runs))
        comparison.to_csv(out / "predicted.csv", index=False)
    if model:
        table, rows, sigma, source = projection_table(model, target)
        table.to_csv(out / "projection.csv", index=False)
        plot_report_projection(rows, scaling, model, target, sigma, out)
        projection = (table, sigma, source)
    text += "\n".join(["", *render_comm(busbw, link, comparison, projection, target, model)])
    for run in elastic_runs:
        from benchmarks.report_elastic import render_elastic

        text += "\n".join(render_elastic(run, out)) + "\n"
    (out / "report.md").write_text(text)
    return out / "report.md"
