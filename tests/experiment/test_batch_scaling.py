"""``harness experiment batch-scaling --quick`` end to end; the methods differ in their recorded LR traces."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.batch_scaling import FULL, METHODS, configurations, method_overrides
from tests.conftest import ROOT, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bs") / "quick"
    proc = subprocess.run([sys.executable, "-m", "harness_cli", "experiment", "batch-scaling", "--quick", "--out",
                           str(out)], cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _lr_trace(run_dir: Path) -> np.ndarray:
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return np.array([r["lr"] for r in records if r["kind"] == "step"])


def test_quick_writes_the_table_and_plots(quick):
    table = pd.read_csv(quick / "table.csv")
    assert sorted(table["global_batch"].unique()) == [32, 256]
    assert set(table["method"]) == set(METHODS) and len(table) == 10
    assert table["test_accuracy_mean"].between(0.1, 1.0).all()
    text = (quick / "table.md").read_text()
    assert "one process, gradient accumulation" in text and "harness experiment batch-scaling --quick" in text
    for png in ("accuracy.png", "loss_early.png"):
        assert (quick / png).read_bytes()[:4] == b"\x89PNG"


def test_methods_differ_in_their_recorded_lr_per_step(quick):
    traces = {m: _lr_trace(quick / "runs" / f"x8-{m}-s0") for m in METHODS}
    base_lr, peak = 0.025, 0.025 * 8
    assert np.all(traces["no-scaling"][: len(traces["no-scaling"]) // 2] == pytest.approx(base_lr))
    assert traces["linear"][0] == pytest.approx(peak)
    gradual = traces["linear-gradual"]
    assert gradual[0] == pytest.approx(base_lr) and np.all(np.diff(gradual[:8]) > 0)
    constant = traces["linear-constant"]
    warm = int(np.argmax(constant > base_lr))
    assert warm > 1 and np.all(constant[:warm] == pytest.approx(base_lr)) and constant[warm] == pytest.approx(peak)
    lars = traces["lars"]
    assert lars[0] == 0.0 and lars.max() == pytest.approx(peak) and lars[-1] < 0.1 * peak
    for a in METHODS:
        for b in METHODS:
            if a < b:
                assert not np.allclose(traces[a], traces[b]), (a, b)


def test_epochs_keep_the_drop_at_three_quarters():
    from benchmarks.batch_scaling import with_epochs

    assert (FULL.epochs, FULL.milestones) == (6.0, (4.5,))
    assert with_epochs(FULL, 8).milestones == (6.0,)
    with pytest.raises(ValueError, match="after 1 epoch"):
        with_epochs(FULL, 1.2)


def test_full_grid_shape_and_method_recipes():
    configs = configurations(FULL)
    assert len(configs) == 2 * 2 + 2 * 5 * 2  # base: one SGD run and LARS; two larger multiples × five methods
    assert "optimizer=lars" in method_overrides("lars", FULL) and "warmup=none" in method_overrides("linear", FULL)
    with pytest.raises(ValueError, match="method must be one of"):
        method_overrides("adam", FULL)


def test_quick_as_two_horovod_workers_says_so(tmp_path):
    out = tmp_path / "k2"
    proc = subprocess.run([sys.executable, "-m", "harness_cli", "experiment", "batch-scaling", "--quick", "--workers",
                           "2", "--methods", "linear-gradual,lars", "--out", str(out)], cwd=ROOT, env=worker_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 Horovod workers (horovodrun)" in (out / "table.md").read_text()
    results = pd.read_csv(out / "results.csv")
    assert (results["world_size"] == 2).all() and len(results) == 4
    # at 8x (kn = 256) each worker runs n = 128 in one pass; at 1x (kn = 32), n = 16
    assert sorted(zip(results["global_batch"], results["accumulation_steps"])) == [(32, 1), (32, 1), (256, 1), (256, 1)]
