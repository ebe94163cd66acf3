"""``harness experiment batch-scaling``: the paired statistics by hand, the grid's recipes, a tiny grid end to
end, and the README table against the committed summary CSV."""

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.batch_scaling import FULL, METHODS, QUICK, configurations, method_overrides, with_epochs
from benchmarks.batch_scaling_report import claims, knee, paired_interval, render_readme, summarise, t975
from harness.recipe import Recipe
from tests.conftest import ROOT, worker_env

RESULTS = ROOT / "results" / "batch-scaling"
README_START = "<!-- batch-scaling table: generated from results/batch-scaling/summary.csv and targets.csv -->"
README_END = "<!-- end of batch-scaling table -->"


def test_paired_interval_by_hand():
    # d = (1.0, 0.5, 2.0): mean 7/6; deviations (-1/6, -2/3, 5/6), squares sum 7/6, std = sqrt(7/12);
    # t_{0.975, 2} = 4.3027: half width 4.3027 * sqrt(7/12) / sqrt(3).
    mean, std, low, high = paired_interval([1.0, 0.5, 2.0])
    half = 4.3027 * math.sqrt(7 / 12) / math.sqrt(3)
    assert (mean, std) == (pytest.approx(7 / 6, rel=1e-15), pytest.approx(math.sqrt(7 / 12), rel=1e-15))
    assert (low, high) == (pytest.approx(7 / 6 - half, rel=1e-12), pytest.approx(7 / 6 + half, rel=1e-12))
    assert (low, high) == (pytest.approx(-0.7306, abs=1e-4), pytest.approx(3.0639, abs=1e-4))
    single = paired_interval([0.3])
    assert single[0] == 0.3 and all(math.isnan(v) for v in single[1:])


def test_t_quantiles_table_and_expansion():
    assert t975(1) == 12.7062 and t975(4) == 2.7764 and t975(30) == 2.0423
    assert t975(40) == pytest.approx(2.0211, abs=1e-3) and t975(120) == pytest.approx(1.9799, abs=1e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t975(0)


def _rows():
    """Base seeds 0-2 at 90, 91, 92%; 32x linear at 89, 90.5, 90%: gaps 1.0, 0.5, 2.0 points."""
    rows = []
    for multiple, method, accuracies in ((1, "linear-gradual", (0.90, 0.91, 0.92)), (32, "linear", (0.89, 0.905, 0.90)),
                                         (32, "linear-gradual", (0.895, 0.91, 0.915)),
                                         (32, "no-scaling", (0.85, 0.86, 0.87))):
        for seed, accuracy in enumerate(accuracies):
            rows.append({"multiple": multiple, "method": method, "seed": seed, "global_batch": 32 * multiple,
                         "test_accuracy": accuracy, "epochs": 10.0, "steps": 60_000 // (32 * multiple) * 10})
    return rows


def test_summary_gives_paired_gaps_and_copies_the_base_for_every_sgd_method():
    table = summarise(_rows())
    assert list(table.columns) == ["global_batch", "multiple", "method", "seeds", "epochs", "steps", "accuracy_mean",
                                   "accuracy_std", "gap_mean", "gap_std", "gap_ci_low", "gap_ci_high"]
    base = table[table["multiple"] == 1]
    assert list(base["method"]) == list(METHODS[:4]) and (base["gap_mean"] == 0).all()
    assert base["accuracy_mean"].iloc[0] == pytest.approx(91.0) and base["accuracy_std"].iloc[0] == pytest.approx(1.0)
    linear = table[(table["multiple"] == 32) & (table["method"] == "linear")].iloc[0]
    assert linear["gap_mean"] == pytest.approx(7 / 6) and linear["gap_ci_low"] == pytest.approx(-0.7306, abs=1e-4)
    assert linear["accuracy_mean"] == pytest.approx(89.8333, abs=1e-4) and linear["steps"] == 580
    # paired: a constant offset of 5 points has zero spread although each side varies by 1 point
    no_scaling = table[(table["multiple"] == 32) & (table["method"] == "no-scaling")].iloc[0]
    assert no_scaling["gap_mean"] == pytest.approx(5.0) and no_scaling["gap_std"] == pytest.approx(0.0, abs=1e-12)


def _curve_rows():
    """Base seeds 0-2 at 90, 91, 92%; each configuration's gaps (base − method, points) per seed below, so that
    linear-gradual's knee is 8x (the 8x gaps' interval ends at 0.448), LARS's 16x, and every claim is known."""
    gaps = {(4, "linear-gradual"): (0.1, 0.0, -0.1), (8, "linear-gradual"): (0.2, 0.3, 0.1),
            (16, "linear-gradual"): (1.0, 1.2, 0.8), (32, "linear-gradual"): (2.0, 2.5, 1.5),
            (4, "lars"): (0.0, 0.0, 0.0), (8, "lars"): (0.1, 0.1, 0.1), (16, "lars"): (0.2, 0.3, 0.1),
            (32, "lars"): (0.6, 0.7, 0.5), (32, "no-scaling"): (5.0, 5.0, 5.0),
            (32, "linear-constant"): (3.0, 3.5, 2.0)}
    base = (90.0, 91.0, 92.0)
    rows = [{"multiple": 1, "method": "linear-gradual", "seed": s, "global_batch": 32, "test_accuracy": a / 100,
             "epochs": 8.0, "steps": 15000} for s, a in enumerate(base)]
    for (multiple, method), values in gaps.items():
        rows += [{"multiple": multiple, "method": method, "seed": s, "global_batch": 32 * multiple,
                  "test_accuracy": (base[s] - g) / 100, "epochs": 8.0, "steps": 15000 // multiple}
                 for s, g in enumerate(values)]
    return rows


def test_the_knee_is_the_largest_multiple_whose_gap_interval_ends_within_half_a_point():
    table = summarise(_curve_rows())
    eight = table[(table["multiple"] == 8) & (table["method"] == "linear-gradual")].iloc[0]
    assert eight["gap_ci_high"] == pytest.approx(0.2 + 4.3027 * 0.1 / math.sqrt(3))  # 0.448: flat
    assert knee(table, "linear-gradual") == 8 and knee(table, "lars") == 16
    assert knee(table, "lars", tolerance=0.9) == 32 and knee(table, "linear-gradual", tolerance=0.3) == 4
    assert knee(table, "no-scaling") == 1  # nothing within tolerance: the base itself
    # not monotone: a flat multiple above one that is not still counts (the table shows both intervals)
    bumpy = table.copy()
    bumpy.loc[(bumpy["multiple"] == 16) & (bumpy["method"] == "lars"), "gap_ci_high"] = 0.9
    assert knee(bumpy, "lars") == 8
    bumpy.loc[(bumpy["multiple"] == 32) & (bumpy["method"] == "lars"), "gap_ci_high"] = 0.4
    assert knee(bumpy, "lars") == 32
    bumpy.loc[bumpy["method"] == "lars", "gap_ci_high"] = math.nan  # one seed: no interval, never flat
    assert knee(bumpy, "lars") == 1


def test_the_four_claims_with_their_paired_intervals_and_verdicts():
    rows = _curve_rows()
    checks = {c["claim"]: c for c in claims(rows, summarise(rows))}
    assert list(checks) == ["1. linear-gradual knee >= 8x", "2a. lars knee > linear-gradual knee",
                            "2b. 32x lars minus linear-gradual (points) > 0",
                            "3. 32x linear-gradual minus linear-constant (points) > 0",
                            "4. 32x no-scaling gap (points) >= 3"]
    assert (checks["1. linear-gradual knee >= 8x"]["value"], checks["1. linear-gradual knee >= 8x"]["supported"]) \
        == (8, "yes")
    two_a = checks["2a. lars knee > linear-gradual knee"]
    assert (two_a["value"], two_a["threshold"], two_a["supported"]) == (16, 8, "yes")
    two_b = checks["2b. 32x lars minus linear-gradual (points) > 0"]  # per seed 1.4, 1.8, 1.0
    assert two_b["value"] == pytest.approx(1.4) and two_b["ci_low"] == pytest.approx(1.4 - 4.3027 * 0.4 / math.sqrt(3))
    assert two_b["supported"] == "yes"
    three = checks["3. 32x linear-gradual minus linear-constant (points) > 0"]  # 1.0, 1.0, 0.5
    assert three["value"] == pytest.approx(5 / 6) and three["ci_low"] > 0 and three["supported"] == "yes"
    four = checks["4. 32x no-scaling gap (points) >= 3"]
    assert four["value"] == pytest.approx(5.0) and four["supported"] == "yes"
    # the same data with LARS no better than linear + gradual at 32x: 2a and 2b fail, with their numbers
    worse = [dict(r, test_accuracy=r["test_accuracy"] - 0.02) if (r["multiple"], r["method"]) == (32, "lars")
             else dict(r, test_accuracy=r["test_accuracy"] - 0.01) if (r["multiple"], r["method"]) == (16, "lars")
             else r for r in rows]
    checks = {c["claim"]: c for c in claims(worse, summarise(worse))}
    assert checks["2a. lars knee > linear-gradual knee"]["supported"] == "no"
    assert checks["2a. lars knee > linear-gradual knee"]["value"] == 8
    assert checks["2b. 32x lars minus linear-gradual (points) > 0"]["value"] == pytest.approx(-0.6)
    assert checks["2b. 32x lars minus linear-gradual (points) > 0"]["supported"] == "no"


def test_claims_need_their_runs():
    rows = [r for r in _curve_rows() if r["method"] in ("linear-gradual",)]
    checks = claims(rows, summarise(rows))
    assert [c["claim"] for c in checks] == ["1. linear-gradual knee >= 8x"]


def test_full_grid_is_the_curve_of_two_methods_with_the_controls_where_they_matter():
    configs = configurations(FULL)
    assert FULL.multiples == (1, 4, 8, 16, 32, 64) and len(FULL.seeds) == 5
    assert len(configs) == 5 * (1 + 2 * 5 + 3) and {c["seed"] for c in configs} == set(range(5))
    pairs = {(c["multiple"], c["method"]) for c in configs}
    assert {(m, method) for m in (4, 8, 16, 32, 64) for method in ("linear-gradual", "lars")} <= pairs
    assert pairs - {(m, method) for m in (4, 8, 16, 32, 64) for method in ("linear-gradual", "lars")} == {
        (1, "linear-gradual"), (32, "no-scaling"), (32, "linear-constant"), (64, "linear-constant")}
    assert len(configurations(dataclasses.replace(FULL, complete=True))) == 5 * (1 + 5 * 6)
    assert {c["method"] for c in configs if c["multiple"] == 1} == {"linear-gradual"}
    assert len(configurations(FULL, methods=("lars",))) == 5 * (1 + 5)  # the base, and only what was asked for
    assert FULL.epochs * 0.75 == FULL.milestones[0]


def test_method_recipes_and_the_mlperf_preset_scaled_to_this_data():
    assert method_overrides("lars", FULL)["optimizer"] == "lars" and method_overrides("linear", FULL)["warmup"] == "none"
    assert method_overrides("linear", FULL)["milestones_epochs"] == [6.0]  # typed values, no --set strings
    x32, x64 = method_overrides("mlperf-lars", FULL, 32), method_overrides("mlperf-lars", FULL, 64)
    # 32x and 64x of Goyal's 256 are ImageNet batches 8192 and 16384: the table's LR 10 and 25, 5 of 42 epochs
    assert x32["reference_lr"] == 10.0 and x64["reference_lr"] == 25.0
    assert x32["warmup_epochs"] == 5 / 42 * FULL.epochs and x64["reference_batch"] == 2048
    assert not {"weight_decay", "trust_coefficient", "label_smoothing"} & set(x32)
    with pytest.raises(ValueError, match="method must be one of"):
        method_overrides("adam", FULL)
    assert with_epochs(FULL, 20).milestones == (15.0,)
    with pytest.raises(ValueError, match="after 1 epoch"):
        with_epochs(FULL, 1.2)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bs") / "quick"
    proc = subprocess.run([sys.executable, "-m", "harness_cli", "experiment", "batch-scaling", "--quick", "--out",
                           str(out)], cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _lr_trace(run_dir: Path) -> np.ndarray:
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return np.array([r["lr"] for r in records if r["kind"] == "step"])


@pytest.mark.slow
def test_quick_grid_writes_every_file(quick):
    results = pd.read_csv(quick / "results.csv")
    assert len(results) == len(configurations(QUICK)) == 2 * (1 + 2 + 6)
    table = pd.read_csv(quick / "summary.csv")
    assert sorted(table["global_batch"].unique()) == [32, 128, 256] and len(table) == 4 + 2 + 6
    assert (table["seeds"] == 2).all() and table["accuracy_mean"].between(10, 100).all()
    assert table[table["multiple"] == 8]["gap_ci_low"].notna().all()
    assert (quick / "readme_table.md").read_text() == render_readme(quick)
    text = (quick / "table.md").read_text()
    assert "one process, gradient accumulation" in text and "harness experiment batch-scaling --quick" in text
    for png in ("error.png", "loss_early.png"):
        assert (quick / png).read_bytes()[:4] == b"\x89PNG"
    claimed = pd.read_csv(quick / "targets.csv")
    assert list(claimed["claim"]) == ["1. linear-gradual knee >= 8x", "2a. lars knee > linear-gradual knee",
                                      "2b. 8x lars minus linear-gradual (points) > 0",
                                      "3 (beside it). 8x linear-gradual minus linear-constant (points) > 0"]
    assert set(claimed["supported"]) <= {"yes", "no"}
    early = pd.read_csv(quick / "loss_early.csv")
    assert set(early["method"]) == set(METHODS) and (early["multiple"] == 8).all()
    assert early["epoch"].max() < 2.0 and early["loss_mean"].gt(0).all()


@pytest.mark.slow
def test_methods_differ_in_their_recorded_lr_per_step(quick):
    traces = {m: _lr_trace(quick / "runs" / f"x8-{m}-s0") for m in METHODS}
    base_lr, peak = QUICK.base_lr, QUICK.base_lr * 8
    assert np.all(traces["no-scaling"][: len(traces["no-scaling"]) // 2] == pytest.approx(base_lr))
    assert traces["linear"][0] == pytest.approx(peak)
    gradual = traces["linear-gradual"]
    assert gradual[0] == pytest.approx(base_lr) and np.all(np.diff(gradual[:8]) > 0)
    constant = traces["linear-constant"]
    warm = int(np.argmax(constant > base_lr))
    assert warm > 1 and np.all(constant[:warm] == pytest.approx(base_lr)) and constant[warm] == pytest.approx(peak)
    lars = traces["lars"]
    assert lars[0] == 0.0 and lars.max() == pytest.approx(peak) and lars[-1] < 0.1 * peak
    mlperf = traces["mlperf-lars"]  # 8x of 256 = 2048 < 16384: the table's LR 10, poly(2) to 1e-4 over T + 1
    records = [json.loads(line) for line in (quick / "runs" / "x8-mlperf-lars-s0" / "records.jsonl").open()]
    recipe = Recipe.from_dict(next(r for r in records if r["kind"] == "run")["recipe"])
    assert (recipe.label_smoothing, recipe.lars_eps, recipe.decay_steps_offset, recipe.trust_coefficient) == \
        (0.1, 1e-7, 1, 0.001)
    warm, decay = recipe.warmup_steps, recipe.total_steps - recipe.warmup_steps + 1
    assert mlperf[0] == 0.0 and mlperf.max() == pytest.approx(10.0) and len(mlperf) == recipe.total_steps
    assert mlperf[-1] == pytest.approx((10.0 - 1e-4) * (1 - (len(mlperf) - 1 - warm) / decay) ** 2 + 1e-4, rel=1e-6)
    for a in METHODS:
        for b in METHODS:
            if a < b:
                assert not np.allclose(traces[a], traces[b]), (a, b)


def test_readme_table_is_the_rendering_of_the_committed_csv():
    if not (RESULTS / "summary.csv").exists():
        pytest.skip("results/batch-scaling/summary.csv is not committed yet")
    readme = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    match = re.search(re.escape(README_START) + r"\n(.*?)" + re.escape(README_END), readme, flags=re.S)
    assert match, f"docs/results.md must hold the table between {README_START!r} and {README_END!r}"
    assert match.group(1) == render_readme(RESULTS)
