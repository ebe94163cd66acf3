"""Reporting for :mod:`benchmarks.batch_scaling`: paired-by-seed statistics, the targets, plots and tables.

Measuring returns rows (one per ``harness train`` run); this module turns them into ``summary.csv``,
``targets.csv``, the plots, ``table.md`` and the README fragment (:func:`render_readme`, generated from the
CSV files alone so that the committed README can be checked against the committed results).

References:
    Student 1908, Biometrika 6(1):1-25 (the t distribution): the interval of paired differences is
    mean ± t_{0.975, n−1}·s/√n.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from benchmarks.batch_scaling import BASE_METHOD, METHODS, SGD_METHODS, Grid

# -- statistics ------------------------------------------------------------------------------------------
# Two-sided 95% quantiles t_{0.975, df} of Student's t for df = 1..30 (any statistics table).
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
        2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
        2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t975(df: int) -> float:
    """t_{0.975, df}: the table for df <= 30, else the Cornish-Fisher expansion (error < 1e-3).

    Raises:
        ValueError: if df < 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def paired_interval(differences) -> tuple[float, float, float, float]:
    """Mean, sample std, and the 95% t interval of paired differences d_s (one per seed).

    mean ± t_{0.975, n−1} · std / √n. With one difference the std and interval are NaN.

    Returns:
        ``(mean, std, low, high)``, in the differences' units.
    """
    values = [float(d) for d in differences]
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _by_seed(frame, multiple: int, method: str) -> dict:
    rows = frame[(frame["multiple"] == multiple) & (frame["method"] == method)]
    return dict(zip(rows["seed"], 100 * rows["test_accuracy"]))


def summarise(rows: list[dict]):
    """One row per (global batch, method): accuracy mean and std over seeds (%), and the gap to the base
    batch (points, base − method) with its paired 95% interval. Multiple 1's ``linear-gradual`` run is
    the base and stands for every SGD method there (gap 0 by construction).

    Raises:
        ValueError: if a configuration lacks a seed the base has (gaps are paired).
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    base = _by_seed(frame, 1, BASE_METHOD)
    out = []
    for (multiple, method), group in frame.groupby(["multiple", "method"], sort=False):
        accuracy = _by_seed(frame, multiple, method)
        if not set(accuracy) <= set(base):
            raise ValueError(f"x{multiple} {method}: seeds {sorted(set(accuracy) - set(base))} have no base run")
        gap = paired_interval([base[s] - accuracy[s] for s in sorted(accuracy)])
        acc = paired_interval(list(accuracy.values()))
        names = SGD_METHODS if multiple == 1 else [method]
        for name in names:
            out.append({"global_batch": int(group["global_batch"].iloc[0]), "multiple": int(multiple),
                        "method": name, "seeds": len(accuracy), "epochs": float(group["epochs"].iloc[0]),
                        "steps": int(group["steps"].iloc[0]), "accuracy_mean": acc[0], "accuracy_std": acc[1],
                        "gap_mean": gap[0], "gap_std": gap[1], "gap_ci_low": gap[2], "gap_ci_high": gap[3]})
    order = {m: i for i, m in enumerate(METHODS)}
    table = pd.DataFrame(out)
    return table.sort_values(["multiple", "method"], key=lambda c: c.map(order) if c.name == "method" else c,
                             ignore_index=True)


def _difference(frame, multiple: int, better: str, worse: str) -> tuple[float, float, float, float]:
    a, b = _by_seed(frame, multiple, better), _by_seed(frame, multiple, worse)
    return paired_interval([a[s] - b[s] for s in sorted(set(a) & set(b))])


def targets(rows: list[dict], table) -> list[dict]:
    """The issue's checks and targets, each with its value, paired 95% interval and verdict.

    ``met`` is ``yes``/``no`` on the mean (the targets are stated on the mean gap); ``significant``
    says whether the 95% interval excludes the threshold.
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    largest = max(frame["multiple"])
    checks = []

    def add(name: str, stat: tuple, threshold: float, higher_is_good: bool):
        mean, _, low, high = stat
        ok = mean >= threshold if higher_is_good else mean <= threshold
        sure = (low > threshold if higher_is_good else high < threshold) if ok else \
            (high < threshold if higher_is_good else low > threshold)
        checks.append({"check": name, "value": mean, "ci_low": low, "ci_high": high, "threshold": threshold,
                       "met": "yes" if ok else "no", "significant": "yes" if sure else "no"})

    add("base accuracy (%) >= 91", paired_interval(list(_by_seed(frame, 1, BASE_METHOD).values())), 91.0, True)
    gap = {(int(r.multiple), r.method): (r.gap_mean, r.gap_std, r.gap_ci_low, r.gap_ci_high)
           for r in table.itertuples()}
    for multiple, method, threshold, good in ((32, "no-scaling", 3.0, True), (32, "linear-gradual", 0.5, False),
                                              (64, "lars", 1.0, False)):
        if (multiple, method) in gap:
            verb = "loses >=" if good else "within"
            add(f"{multiple}x {method} gap (points) {verb} {threshold:g}", gap[multiple, method], threshold, good)
    for worse in ("linear", "linear-constant"):
        if {(largest, "linear-gradual"), (largest, worse)} <= set(gap):
            add(f"{largest}x linear-gradual minus {worse} (points) > 0",
                _difference(frame, largest, "linear-gradual", worse), 0.0, True)
    return checks


# -- plots -----------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(table, out: Path) -> Path:
    """``accuracy.png``: mean test accuracy against global batch per method, error bars ± one std over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, method in enumerate(METHODS):
        rows = table[table["method"] == method]
        if len(rows):
            shift = 1 + 0.02 * (i - 2.5)  # a small horizontal offset so the error bars do not overlap
            ax.errorbar(rows["global_batch"] * shift, rows["accuracy_mean"], yerr=rows["accuracy_std"].fillna(0),
                        marker="o", capsize=3, label=method)
    batches = sorted(table["global_batch"].unique())
    ax.set(xscale="log", xlabel="global batch kn", ylabel="test accuracy (%)",
           title=f"Fashion-MNIST, same epochs at every batch (mean ± std, {int(table['seeds'].max())} seeds)")
    ax.set_xticks(batches, labels=[str(b) for b in batches])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)
    return out / "accuracy.png"


def early_losses(rows: list[dict], out: Path, multiple: int, *, epochs: float = 2.0) -> dict[str, tuple[list, list]]:
    """Training loss per step over the first ``epochs``, averaged over seeds, per method at ``multiple``.

    Returns:
        ``{method: (epoch of each step, mean loss)}``.
    """
    import numpy as np

    curves = {}
    for method in METHODS:
        losses, x = [], None
        for row in rows:
            if row["multiple"] != multiple or row["method"] != method:
                continue
            records = [json.loads(line) for line in (out / row["run_dir"] / "records.jsonl").read_text().splitlines()]
            spe = row["steps"] / row["epochs"]
            steps = [r for r in records if r["kind"] == "step" and r["rank"] == 0 and r["step"] < epochs * spe]
            losses.append([r["loss"] for r in steps])
            x = [r["step"] / spe for r in steps]
        if losses:
            curves[method] = (x, np.mean(losses, axis=0).tolist())
    return curves


def write_early_losses(curves: dict, multiple: int, out: Path) -> Path:
    """``loss_early.csv``: the early-loss curves as data (multiple, method, epoch, mean training loss)."""
    import pandas as pd

    frame = pd.DataFrame([{"multiple": multiple, "method": method, "epoch": e, "loss_mean": loss}
                          for method, (x, y) in curves.items() for e, loss in zip(x, y)])
    frame.to_csv(out / "loss_early.csv", index=False)
    return out / "loss_early.csv"


def plot_early_loss(curves: dict, multiple: int, out: Path) -> Path:
    """``loss_early.png``: :func:`early_losses`' curves (training loss over the first two epochs at
    ``multiple``, the largest), warmup or not.

    ``mlperf-lars``'s loss is label-smoothed (ε = 0.1), so its floor is higher than the others'.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method, (x, y) in curves.items():
        ax.plot(x, y, label=method)
    ax.set(xlabel="epoch", ylabel="training loss (mean over seeds)",
           title=f"Early training at {multiple}× the base batch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "loss_early.png", dpi=120)
    plt.close(fig)
    return out / "loss_early.png"


# -- tables ----------------------------------------------------------------------------------------------
def _interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def render_table(table) -> str:
    """The summary as a Markdown table: accuracy mean ± std, gap to base with its paired 95% interval."""
    lines = ["| global batch | multiple | method | steps | test accuracy, % (mean ± std) | gap to base, points "
             "| gap 95% CI |", "|--:|--:|:--|--:|--:|--:|:--|"]
    for r in table.itertuples():
        std = "n/a" if math.isnan(r.accuracy_std) else f"{r.accuracy_std:.2f}"
        gap = "base" if r.multiple == 1 else f"{r.gap_mean:+.2f}"
        ci = "" if r.multiple == 1 else _interval(r.gap_ci_low, r.gap_ci_high)
        lines.append(f"| {r.global_batch} | {r.multiple}× | {r.method} | {r.steps} | {r.accuracy_mean:.2f} ± {std} "
                     f"| {gap} | {ci} |")
    return "\n".join(lines)


def render_targets(checks) -> str:
    """The checks and targets as a Markdown table (value, paired 95% interval, verdict)."""
    lines = ["| check | value | 95% CI | met | CI clear of the threshold |", "|:--|--:|:--|:--|:--|"]
    for c in checks:
        lines.append(f"| {c['check']} | {c['value']:.2f} | {_interval(c['ci_low'], c['ci_high'])} | {c['met']} "
                     f"| {c['significant']} |")
    return "\n".join(lines)


def render_readme(out: Path) -> str:
    """The README fragment, from ``out/summary.csv`` and ``out/targets.csv`` alone (so it can be checked
    against the committed CSV files)."""
    import pandas as pd

    table = pd.read_csv(out / "summary.csv")
    checks = pd.read_csv(out / "targets.csv").to_dict("records")
    return "\n".join([render_table(table), "", render_targets(checks), ""])


def render(table, checks, grid: Grid, *, mode: str, backend: str, command: str, wall_s: float, machine: str) -> str:
    """``table.md``: how the grid was produced, the summary and the targets."""
    return "\n".join([
        "# Batch scaling on Fashion-MNIST", "",
        f"`{command}` — backend {backend}, model {grid.model}, {mode}; base batch b0 = {grid.base_batch} with LR "
        f"{grid.base_lr}, {grid.epochs:g} epochs at every batch, warmup {grid.warmup_epochs:g} epoch(s), "
        f"÷10 at epoch(s) {', '.join(f'{m:g}' for m in grid.milestones)} (SGD), LARS η = {grid.trust_coefficient} "
        f"with poly(2); {len(grid.seeds)} seeds, paired; {wall_s / 60:.1f} min on {machine}.", "",
        render_table(table), "",
        "Gap = base − method, in points, seed by seed; the interval is the paired t interval. At multiple 1 "
        "the four SGD methods are the same run.", "",
        render_targets(checks), "",
        "![accuracy](accuracy.png) ![early loss](loss_early.png)", ""])


def machine_text() -> str:
    """The machine, for the record: CPU model and core count."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def write_outputs(rows: list[dict], grid: Grid, out: Path, *, mode: str, backend: str, command: str,
                  wall_s: float) -> tuple[str, list[dict]]:
    """Write ``results.csv`` (per run), ``summary.csv``, ``targets.csv``, ``table.md``, ``readme_table.md``,
    ``grid.json``, the two plots and ``loss_early.csv`` into ``out``.

    Returns:
        (``table.md``'s text, :func:`targets`' checks).
    """
    import pandas as pd

    pd.DataFrame(rows).sort_values(["multiple", "method", "seed"]).to_csv(out / "results.csv", index=False)
    table = summarise(rows)
    table.to_csv(out / "summary.csv", index=False)
    checks = targets(rows, table)
    pd.DataFrame(checks).to_csv(out / "targets.csv", index=False)
    plot_accuracy(table, out)
    multiple = max(r["multiple"] for r in rows)
    curves = early_losses(rows, out, multiple)
    write_early_losses(curves, multiple, out)
    plot_early_loss(curves, multiple, out)
    machine = machine_text()
    text = render(table, checks, grid, mode=mode, backend=backend, command=command, wall_s=wall_s, machine=machine)
    (out / "table.md").write_text(text)
    (out / "readme_table.md").write_text(render_readme(out))
    (out / "grid.json").write_text(json.dumps({**dataclasses.asdict(grid), "mode": mode, "backend": backend,
                                               "command": command, "wall_s": wall_s, "machine": machine}, indent=2))
    return text, checks
