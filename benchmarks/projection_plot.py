"""``projection.png``: projected efficiency and images/s against GPUs, published anchors and measured points."""

from __future__ import annotations

from pathlib import Path

SHORT = {"Goyal": "Goyal R50", "ResNet-101": "R101", "Inception V3": "IncV3", "VGG-16": "VGG16"}


def anchor_points() -> list[dict]:
    """The validation table as plot points: ``label``, ``world_size``, ``published``, ``predicted`` (0-1)."""
    from benchmarks.published import CASES, validation_rows

    points = []
    for case, row in zip(CASES, validation_rows(CASES)):
        label = next((short for key, short in SHORT.items() if key in case.name), "DLE R50")
        if "NVIDIA" in case.name:
            label = f"DLE R50 {'TF+Hvd' if 'TensorFlow' in case.name else 'PT'} {case.name.split(', ')[-2]}"
        elif "Horovod" in case.name:
            label = f"Horovod {label} {case.network.name.split()[-1]}"
        points.append({"label": label, "world_size": case.world_size, "base_world_size": case.base_world_size,
                       "published": row["published"],
                       "predicted": row["predicted"]})
    return points


def plot_projection(rows: list[dict], out: str | Path, *, title: str, note: str, anchors: list[dict] | None = None,
                    measured: list[dict] | None = None, measured_label: str = "measured here",
                    without_input: list[dict] | None = None) -> Path:
    """Write the two-panel projection plot and return its path.

    Args:
        rows: :func:`benchmarks.costmodel.project` rows (with ``images_per_second``).
        out: the PNG path.
        title: the model and network, as the figure title; note: settings, printed under the axes.
        anchors: :func:`anchor_points` (other models and networks: the validation table).
        measured: ``world_size``, ``efficiency`` (0-1) and ``images_per_second`` of measured runs.
        measured_label: legend text for the measured points.
        without_input: the same projection without the input terms (drawn dashed), when ``rows`` has them;
            world sizes where input or storage sets the step are marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = [r["world_size"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6))
    left.plot(k, [100 * r["efficiency"] for r in rows], "o-", color="C0", lw=2, label="projected (this model)")
    if without_input:
        left.plot(k, [100 * r["efficiency"] for r in without_input], "--", color="C0", lw=1,
                  label="without the input terms")
    for stage, marker in (("input", "s"), ("storage", "^")):
        bound = [r for r in rows if r.get("bound") == stage]
        if bound:
            left.plot([r["world_size"] for r in bound], [100 * r["efficiency"] for r in bound], marker, ms=10,
                      mfc="none", mec="C3", mew=2, label=f"{stage}-bound")
    counts: dict[int, int] = {}
    for i, a in enumerate(anchors or [], 1):
        same = [b["world_size"] for b in anchors].count(a["world_size"])
        slot = counts[a["world_size"]] = counts.get(a["world_size"], -1) + 1
        x = a["world_size"] * 2 ** (0.09 * (slot - (same - 1) / 2))  # spread cases at one k sideways
        left.plot([x, x], [100 * a["published"], 100 * a["predicted"]], "-", color="0.6", lw=1)
        left.plot(x, 100 * a["published"], "D", color="0.25", ms=5)
        left.plot(x, 100 * a["predicted"], "o", mfc="none", mec="0.45", ms=6)
        left.annotate(str(i), (x, 100 * a["published"]), xytext=(3, 3), textcoords="offset points", fontsize=7)
    if anchors:
        left.plot([], [], "D", color="0.25", ms=5, label="published (validation cases)")
        left.plot([], [], "o", mfc="none", mec="0.45", ms=6, label="model's prediction for them")
    if measured:
        left.plot([m["world_size"] for m in measured], [100 * m["efficiency"] for m in measured], "*", color="C3",
                  ms=12, label=measured_label)
    left.set(xscale="log", xlabel="GPUs k (log2)",
             ylabel=f"weak-scaling efficiency vs k0 = {rows[0]['base_world_size']} (%)",
             ylim=(min(50, *(100 * r["efficiency"] - 5 for r in rows)), 102))
    left.axhline(100, ls="--", color="grey", lw=0.8)
    left.legend(fontsize=7, loc="lower left")
    x = [r["images_per_second"] for r in rows]
    right.plot(k, x, "o-", color="C0", lw=2, label="projected")
    ideal = x[0] / rows[0]["efficiency"] / k[0]  # images/s of one worker at the base efficiency
    right.plot(k, [ideal * kk for kk in k], "--", color="grey", label="ideal (linear from k0)")
    if measured:
        right.plot([m["world_size"] for m in measured], [m["images_per_second"] for m in measured], "*",
                   color="C3", ms=12, label=measured_label)
    right.set(xscale="log", yscale="log", xlabel="GPUs k (log2)", ylabel="images/s (total)")
    right.legend(fontsize=7, loc="upper left")
    ticks = sorted({*k, *[m["world_size"] for m in measured or []]})
    for ax, extra in ((left, [a["world_size"] for a in anchors or []]), (right, [])):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({*ticks, *extra}), [str(t) for t in sorted({*ticks, *extra})])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
    last = rows[-1]
    right.annotate(f"{last['images_per_second']:,.0f} images/s\n{100 * last['efficiency']:.1f}% at k = {k[-1]}",
                   (k[-1], x[-1]), xytext=(-8, -28), textcoords="offset points", ha="right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    if anchors:
        lines = [f"{i} {a['label']} ({a['base_world_size']}→{a['world_size']}): "
                 f"published {100 * a['published']:.0f}%, model {100 * a['predicted']:.0f}%"
                 for i, a in enumerate(anchors, 1)]
        half = (len(lines) + 1) // 2
        for col, chunk in enumerate((lines[:half], lines[half:])):
            fig.text(0.01 + 0.33 * col, 0.15, "\n".join(chunk), fontsize=6.5, va="top", family="monospace")
        fig.text(0.67, 0.15, "Validation cases (other models and networks; docs/benchmarks.md table).\nDiamond: published; "
                 "circle: this model's prediction.", fontsize=6.5, va="top")
    fig.text(0.01, 0.005, note, fontsize=6.5, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.17, 1, 0.95))
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
