"""The report of an elastic run (``harness train --elastic``): k, global batch and LR over time, and
throughput per phase of constant k."""

from __future__ import annotations

from pathlib import Path

from harness.runtime.records import RECORDS, read_records, throughput


def phases(step_records: list[dict]) -> list[dict]:
    """Runs of consecutive steps with the same k, in step order.

    Args:
        step_records: ``step`` records of every rank (each with ``update``, ``step``, ``world_size``,
            ``time``, ``images``, ``step_time_s``).

    Returns:
        One dict per phase: ``phase``, ``world_size``, ``global_batch`` (k × images per rank),
        ``updates`` (optimizer steps), ``first_step``, ``last_step`` (schedule steps of the recipe for k), ``start_s``/``end_s`` (seconds since the run's first step),
        ``images_per_second`` (summed over ranks from each rank's median step time,
        :func:`harness.runtime.records.throughput`) and ``images_per_second_per_worker``.
    """
    ordered = sorted(step_records, key=lambda r: (r["update"], r["rank"]))
    if not ordered:
        return []
    t0 = min(r["time"] for r in ordered)
    groups: list[list[dict]] = []
    for record in ordered:
        if not groups or groups[-1][-1]["world_size"] != record["world_size"]:
            groups.append([])
        groups[-1].append(record)
    result = []
    for index, group in enumerate(groups):
        images, k = group[0]["images"], group[0]["world_size"]
        rates = throughput(group, images_per_step=images, skip=0)
        result.append({"phase": index, "world_size": k, "global_batch": k * images, "updates": len(group) // k,
                       "first_step": group[0]["step"], "last_step": group[-1]["step"], "start_s": group[0]["time"] - t0,
                       "end_s": max(r["time"] for r in group) - t0, "images_per_second": rates["images_per_second"],
                       "images_per_second_per_worker": rates["images_per_second_per_worker"]})
    return result


def plot_elastic(step_records: list[dict], out: Path) -> Path:
    """``elastic.png``: k, global batch and LR against seconds since the first step (rank 0's steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = sorted((r for r in step_records if r["rank"] == 0), key=lambda r: r["update"])
    t0 = mine[0]["time"]
    t = [r["time"] - t0 for r in mine]
    fig, axes = plt.subplots(3, 1, figsize=(6, 6), sharex=True)
    series = (("workers k", [r["world_size"] for r in mine]),
              ("global batch kn", [r["world_size"] * r["images"] for r in mine]), ("LR", [r["lr"] for r in mine]))
    for ax, (label, values) in zip(axes, series):
        ax.step(t, values, where="post")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title("Elastic run: the recipe follows k")
    axes[-1].set_xlabel("seconds since the first step")
    fig.tight_layout()
    fig.savefig(out / "elastic.png", dpi=120)
    plt.close(fig)
    return out / "elastic.png"


def render_elastic(run: dict, out: Path) -> list[str]:
    """Write ``elastic.png`` and ``phases.csv`` for an elastic run; returns the report's lines.

    Raises:
        ValueError: the run directory's records cannot be read.
    """
    import pandas as pd

    records = read_records(Path(run["run_dir"]) / RECORDS)
    steps = [r for r in records if r["kind"] == "step"]
    table = pd.DataFrame(phases(steps))
    table.to_csv(out / "phases.csv", index=False)
    plot_elastic(steps, out)
    resizes = [r for r in records if r["kind"] == "resize"]
    lines = ["", f"## Elastic run `{run['run_dir']}`", "",
             f"World sizes {run.get('world_sizes')}, {len(resizes)} change(s) of k; final test accuracy "
             f"{run.get('test_accuracy', float('nan')):.4f}; ranks in sync: {run.get('ranks_in_sync')}.", "",
             table.to_markdown(index=False, floatfmt=".4g"), ""]
    lines += [f"- step {r['step']} (epoch {r['epoch']}, {r['consumed']} images in): k {r['old_world_size']} → "
              f"{r['world_size']} on {', '.join(r['hosts'])}; global batch {r['global_batch']}, peak LR "
              f"{r['peak_lr']:.4g}, next LR {r['lr']:.4g}" for r in resizes]
    return lines + ["", "![elastic](elastic.png)"]
