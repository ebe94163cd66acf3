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

from benchmarks.batch_scaling import BASE_METHOD, CURVE_METHODS, METHODS, SGD_METHODS, Grid

KNEE_TOLERANCE = 0.5  # points: a multiple is "flat" when the upper end of its gap's 95% CI is at most this
CONSTANT_WARMUP_MULTIPLE = 32  # where claim 3 is read: Goyal's 8k is 32x their 256 (Table 1)
NO_SCALING_MULTIPLE = 32  # where claim 4 is read
NO_SCALING_LOSS = 3.0  # points the control must lose there

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


def knee(table, method: str, *, tolerance: float = KNEE_TOLERANCE) -> int:
    """The knee of ``method``'s curve: the largest multiple whose gap to the base has the upper end of its
    paired 95% interval at most ``tolerance`` points (the accuracy there is indistinguishable from the base's
    within ``tolerance``, with 95% confidence); 1 (the base itself) when no multiple above it is.

    Args:
        table: :func:`summarise`'s table (``multiple``, ``method``, ``gap_ci_high``).

    Returns:
        The multiple (1, or one the method was run at). A multiple whose interval is undefined (one seed)
        is never flat.

    Example:
        Gaps' upper ends 0.2, 0.4, 0.9, 0.3 at 4x, 8x, 16x, 32x give 32: the largest that is within
        tolerance, whatever lies below it (:func:`render_claims` shows every multiple's interval).
    """
    rows = table[(table["method"] == method) & (table["multiple"] > 1)]
    flat = [int(r.multiple) for r in rows.itertuples() if not math.isnan(r.gap_ci_high) and r.gap_ci_high <= tolerance]
    return max(flat, default=1)


def claims(rows: list[dict], table) -> list[dict]:
    """The papers' comparative claims on this grid, each with its value, paired 95% interval and verdict.

    1. linear scaling + gradual warmup: knee >= 8x (Goyal et al.: flat up to 8k, 32x their base);
    2. LARS: (a) knee at a larger multiple than linear + gradual's, (b) at the largest multiple, LARS's
       accuracy minus linear + gradual's > 0 with the interval clear of 0 (You et al.);
    3. gradual warmup beats constant warmup at 32x (Goyal Table 1 at 8k), interval clear of 0; the other
       multiples constant warmup ran at are reported beside it, not as the claim;
    4. no LR scaling loses >= 3 points at 32x (the control is sensitive): the mean gap.

    A claim whose configurations were not run is left out. Returns dicts with ``claim``, ``value``,
    ``ci_low``, ``ci_high``, ``threshold``, ``supported`` (``yes``/``no``) and ``rule``.
    """
    import pandas as pd

    frame = pd.DataFrame(rows)
    ran = {(int(r.multiple), r.method) for r in table.itertuples() if r.multiple > 1}  # 1: the base, for every SGD method
    largest = int(max(frame["multiple"]))
    nan = math.nan
    out = []

    def add(claim, value, low, high, threshold, supported, rule):
        out.append({"claim": claim, "value": value, "ci_low": low, "ci_high": high, "threshold": threshold,
                    "supported": "yes" if supported else "no", "rule": rule})

    gradual_knee = knee(table, "linear-gradual") if any(m == "linear-gradual" for _, m in ran) else None
    if gradual_knee is not None:
        add("1. linear-gradual knee >= 8x", gradual_knee, nan, nan, 8, gradual_knee >= 8,
            f"largest multiple whose gap CI ends <= {KNEE_TOLERANCE:g} points")
    if gradual_knee is not None and any(m == "lars" for _, m in ran):
        lars_knee = knee(table, "lars")
        add("2a. lars knee > linear-gradual knee", lars_knee, nan, nan, gradual_knee, lars_knee > gradual_knee,
            "knees as in claim 1")
        if {(largest, "lars"), (largest, "linear-gradual")} <= ran:
            mean, _, low, high = _difference(frame, largest, "lars", "linear-gradual")
            add(f"2b. {largest}x lars minus linear-gradual (points) > 0", mean, low, high, 0.0, low > 0,
                "paired 95% CI above 0")
    constant = sorted(m for m, method in ran if method == "linear-constant")
    for m in sorted(constant, key=lambda m: m != CONSTANT_WARMUP_MULTIPLE):
        if (m, "linear-gradual") in ran:
            mean, _, low, high = _difference(frame, m, "linear-gradual", "linear-constant")
            label = "3." if m == CONSTANT_WARMUP_MULTIPLE else "3 (beside it)."
            add(f"{label} {m}x linear-gradual minus linear-constant (points) > 0", mean, low, high, 0.0, low > 0,
                "paired 95% CI above 0")
    if (NO_SCALING_MULTIPLE, "no-scaling") in ran:
        row = table[(table["multiple"] == NO_SCALING_MULTIPLE) & (table["method"] == "no-scaling")].iloc[0]
        add(f"4. {NO_SCALING_MULTIPLE}x no-scaling gap (points) >= {NO_SCALING_LOSS:g}", row.gap_mean,
            row.gap_ci_low, row.gap_ci_high, NO_SCALING_LOSS, row.gap_mean >= NO_SCALING_LOSS, "mean paired gap")
    return out


# -- plots -----------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_interval(mean: float, std: float, seeds: int) -> tuple[float, float]:
    """The 95% t interval of a mean over ``seeds`` runs: mean ± t_{0.975, seeds−1}·std/√seeds (NaN for one)."""
    if seeds < 2 or math.isnan(std):
        return math.nan, math.nan
    half = t975(seeds - 1) * std / math.sqrt(seeds)
    return mean - half, mean + half


CONTROL_COLOURS = {"no-scaling": "C1", "linear": "C4", "linear-constant": "C2", "mlperf-lars": "C5"}


def plot_error(table, out: Path) -> Path:
    """``error.png``: test error (%) against global batch on a log2 axis, as Goyal et al.'s Figure 1: one line
    per curve method through the multiples it ran at, with the 95% band of its mean over seeds; the base's
    band across the plot; the controls as points with 95% bars; each curve's knee marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    base = table[(table["multiple"] == 1) & (table["method"] == BASE_METHOD)].iloc[0]
    base_low, base_high = mean_interval(100 - base.accuracy_mean, base.accuracy_std, int(base.seeds))
    batches = sorted(int(b) for b in table["global_batch"].unique())
    ax.axhspan(base_low, base_high, color="0.85", label=f"base kn = {int(base.global_batch)}, 95% band")
    ax.axhline(100 - base.accuracy_mean, color="0.5", lw=0.8)
    colours = {"linear-gradual": "C0", "lars": "C3"}
    for method in CURVE_METHODS:
        rows = table[(table["method"] == method) | ((table["multiple"] == 1) & (table["method"] == BASE_METHOD))]
        rows = rows.drop_duplicates("multiple").sort_values("multiple")
        if len(rows) < 2:
            continue
        error = 100 - rows["accuracy_mean"]
        bands = [mean_interval(100 - r.accuracy_mean, r.accuracy_std, int(r.seeds)) for r in rows.itertuples()]
        ax.fill_between(rows["global_batch"], [b[0] for b in bands], [b[1] for b in bands],
                        color=colours.get(method), alpha=0.2, lw=0)
        ax.plot(rows["global_batch"], error, marker="o", color=colours.get(method), label=method)
        k = knee(table, method)
        at = rows[rows["multiple"] == k].iloc[0]
        ax.plot([at.global_batch], [100 - at.accuracy_mean], marker="v", ms=12, mfc="none",
                color=colours.get(method), label=f"{method} knee: {k}×")
    for i, method in enumerate(m for m in METHODS if m not in CURVE_METHODS):
        rows = table[(table["method"] == method) & (table["multiple"] > 1)]
        if len(rows):
            bands = [mean_interval(100 - r.accuracy_mean, r.accuracy_std, int(r.seeds)) for r in rows.itertuples()]
            errors = 100 - rows["accuracy_mean"]
            yerr = [[e - b[0] for e, b in zip(errors, bands)], [b[1] - e for e, b in zip(errors, bands)]]
            ax.errorbar(rows["global_batch"] * (1.04 + 0.04 * i), errors, yerr=yerr, fmt="s", ms=4, capsize=2,
                        color=CONTROL_COLOURS.get(method), label=method)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, labels=[str(b) for b in batches])
    ax.minorticks_off()
    ax.set(xlabel="global batch kn (log2)", ylabel="test error (%)",
           title=f"Fashion-MNIST, {table['epochs'].iloc[0]:g} epochs at every batch "
                 f"({int(table['seeds'].max())} seeds, 95% bands)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "error.png", dpi=120)
    plt.close(fig)
    return out / "error.png"


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


def render_claims(checks: list[dict]) -> str:
    """The claims as a Markdown table: value (a knee, or a difference in points), paired 95% interval,
    threshold, verdict, and how it was read."""
    lines = ["| claim | value | 95% CI | threshold | supported | read as |", "|:--|--:|:--|--:|:--|:--|"]
    for c in checks:
        value = f"{c['value']:g}×" if "knee" in c["claim"] else f"{c['value']:+.2f}"
        threshold = f"{c['threshold']:g}×" if "knee" in c["claim"] else f"{c['threshold']:g}"
        lines.append(f"| {c['claim']} | {value} | {_interval(c['ci_low'], c['ci_high'])} | {threshold} "
                     f"| {c['supported']} | {c['rule']} |")
    return "\n".join(lines)


def render_readme(out: Path) -> str:
    """The README fragment, from ``out/summary.csv`` and ``out/targets.csv`` alone (so it can be checked
    against the committed CSV files)."""
    import pandas as pd

    table = pd.read_csv(out / "summary.csv")
    checks = pd.read_csv(out / "targets.csv").to_dict("records")
    return "\n".join([render_table(table), "", render_claims(checks), ""])


def render(table, checks, grid: Grid, *, mode: str, backend: str, command: str, wall_s: float, machine: str) -> str:
    """``table.md``: how the grid was produced, the summary and the claims."""
    return "\n".join([
        "# Batch scaling on Fashion-MNIST", "",
        f"`{command}` — backend {backend}, model {grid.model}, {mode}; base batch b0 = {grid.base_batch} with LR "
        f"{grid.base_lr}, {grid.epochs:g} epochs at every batch, warmup {grid.warmup_epochs:g} epoch(s), "
        f"÷10 at epoch(s) {', '.join(f'{m:g}' for m in grid.milestones)} (SGD), LARS η = {grid.trust_coefficient} "
        f"with poly(2); {len(grid.seeds)} seeds, paired; {wall_s / 60:.1f} min on {machine}.", "",
        render_table(table), "",
        "Gap = base − method, in points, seed by seed; the interval is the paired t interval. At multiple 1 "
        "the four SGD methods are the same run. A knee is the largest multiple whose gap's interval ends at "
        f"most {KNEE_TOLERANCE:g} points above 0 (`benchmarks.batch_scaling_report.knee`).", "",
        render_claims(checks), "",
        "![error](error.png) ![early loss](loss_early.png)", ""])


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
    """Write ``results.csv`` (per run), ``summary.csv``, ``targets.csv`` (:func:`claims`), ``table.md``,
    ``readme_table.md``, ``grid.json``, ``error.png``, ``loss_early.png`` and ``loss_early.csv`` into ``out``.

    Returns:
        (``table.md``'s text, :func:`claims`' rows).
    """
    import pandas as pd

    pd.DataFrame(rows).sort_values(["multiple", "method", "seed"]).to_csv(out / "results.csv", index=False)
    table = summarise(rows)
    table.to_csv(out / "summary.csv", index=False)
    checks = claims(rows, table)
    pd.DataFrame(checks, columns=["claim", "value", "ci_low", "ci_high", "threshold", "supported", "rule"]).to_csv(
        out / "targets.csv", index=False)
    plot_error(table, out)
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
