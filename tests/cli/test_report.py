"""``harness report`` from recorded run directories, including failed and partial runs."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def harness(*args):
    return subprocess.run([sys.executable, "-m", "harness_cli", *args], cwd=ROOT, capture_output=True, text=True)


def make_run(base: Path, k: int, images_per_second: float, *, n: int = 128, summary: bool = True) -> Path:
    run = base / f"k{k}"
    run.mkdir(parents=True)
    records = [{"kind": "run", "rank": 0, "world_size": k, "threads_per_rank": 1, "hosts": ["h"]}]
    records += [{"kind": "step", "rank": r, "world_size": k, "step": 0, "step_time_s": 0.1} for r in range(k)]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary:
        (run / "summary.json").write_text(json.dumps({
            "world_size": k, "global_batch": k * n, "per_worker_batch": n, "images_per_second": images_per_second,
            "step_time_s_median": k * n / images_per_second, "test_accuracy": 0.9, "backend": "torch",
            "model": "resnet-small", "dataset": "fashion-mnist"}))
    return run


def test_scaling_csv_has_one_row_per_world_size_with_weak_scaling_efficiency(tmp_path):
    runs = [make_run(tmp_path, 1, 1000.0), make_run(tmp_path, 2, 1800.0), make_run(tmp_path, 4, 3000.0)]
    proc = harness("report", *map(str, runs), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "report" / "scaling.csv")
    assert table["world_size"].tolist() == [1, 2, 4]
    assert table["efficiency"].tolist() == pytest.approx([1.0, 0.9, 0.75])
    assert table["speedup"].tolist() == pytest.approx([1.0, 1.8, 3.0])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "relative to the smallest world size measured" in text and "k0 = 1" in text
    for png in ("throughput.png", "efficiency.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_efficiency_is_relative_to_the_smallest_k_measured(tmp_path):
    runs = [make_run(tmp_path, 2, 2000.0), make_run(tmp_path, 8, 6000.0)]
    assert harness("report", *map(str, runs), "--out", str(tmp_path / "r")).returncode == 0
    assert pd.read_csv(tmp_path / "r" / "scaling.csv")["efficiency"].tolist() == pytest.approx([1.0, 0.75])


@pytest.mark.parametrize("case, fragment", [
    ("partial", "the run failed or was interrupted"),
    ("missing", "not a run directory"),
    ("empty", "not a harness run directory"),
    ("mixed", "runs differ in per_worker_batch"),
    ("malformed", "malformed run files"),
])
def test_bad_run_directories_give_one_line_and_exit_2(tmp_path, case, fragment):
    good = make_run(tmp_path, 1, 1000.0)
    if case == "partial":
        bad = make_run(tmp_path, 2, 0, summary=False)
    elif case == "missing":
        bad = tmp_path / "nope"
    elif case == "empty":
        bad = tmp_path / "empty"
        bad.mkdir()
    elif case == "mixed":
        bad = make_run(tmp_path / "other", 2, 1500.0, n=64)
    else:
        bad = make_run(tmp_path, 2, 1500.0)
        (bad / "summary.json").write_text("{not json")
    proc = harness("report", str(good), str(bad), "--out", str(tmp_path / "report"))
    assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "report").exists()


def test_existing_report_is_not_overwritten_without_the_flag(tmp_path):
    run = make_run(tmp_path, 1, 1000.0)
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("mine")
    proc = harness("report", str(run), "--out", str(out))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and (out / "report.md").read_text() == "mine"
    assert harness("report", str(run), "--out", str(out), "--overwrite").returncode == 0
    assert (out / "report.md").read_text() != "mine"


def make_allreduce_run(base: Path, k: int) -> Path:
    """An allreduce run whose Horovod times follow a ring with α = 50 µs and B = 2 GB/s."""
    run = base / f"ar{k}"
    run.mkdir(parents=True)
    results = []
    for size in (2**10, 2**14, 2**18, 2**22, 2**26):
        t = 0.0 if k == 1 else 2 * (k - 1) * 50e-6 + 2 * (k - 1) / k * size / 2e9
        t = max(t, 1e-6)
        results.append({"kind": "allreduce", "rank": 0, "world_size": k, "impl": "horovod", "size_bytes": size,
                        "time_s": t, "algbw_gbps": size / t / 1e9, "busbw_gbps": size / t / 1e9 * 2 * (k - 1) / k})
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    (run / "summary.json").write_text(json.dumps({"kind": "allreduce", "world_size": k, "results": results,
                                                  "fusion_threshold_bytes": 2**27, "cycle_time_ms": 1.0}))
    return run


def test_full_report_with_busbw_fit_prediction_and_projection(tmp_path):
    runs = [make_run(tmp_path, 1, 1000.0), make_run(tmp_path, 2, 1800.0)]
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "kind": "throughput", "model_bytes": 4 * 2**20,
                                                      "step_time_s_per_rank": [0.1] * summary["world_size"],
                                                      "step_time_s_spread": 0.0}))
    ar = [make_allreduce_run(tmp_path, 1), make_allreduce_run(tmp_path, 2)]
    out = tmp_path / "report"
    proc = harness("report", *map(str, runs + ar), "--out", str(out), "--world-sizes", "8,64,256", "--inter-gbps", "25")
    assert proc.returncode == 0, proc.stderr
    text = (out / "report.md").read_text()
    assert "α = 50.0 µs, B = 2.000 GB/s" in text and "## Projection to 256 GPUs" in text
    busbw = pd.read_csv(out / "busbw.csv")
    assert len(busbw) == 10 and (busbw[busbw.world_size == 1].busbw_gbps == 0).all()
    predicted = pd.read_csv(out / "predicted.csv")
    assert predicted["measured_efficiency"].tolist() == pytest.approx([1.0, 0.9])
    assert predicted["predicted_efficiency"].iloc[0] == 1.0 and 0 < predicted["predicted_efficiency"].iloc[1] <= 1
    projection = pd.read_csv(out / "projection.csv")
    # efficiency is relative to the stated base world size (k0 = 1 by default), not the smallest listed
    assert projection["world_size"].tolist() == [8, 64, 256] and 0.9 < projection["efficiency"].iloc[0] < 1.0
    assert projection["efficiency"].is_monotonic_decreasing
    assert "efficiency relative to k0 = 1" in text and "![projection](projection.png)" in text
    assert (out / "projection.png").read_bytes()[:4] == b"\x89PNG" and "projection plot:" in proc.stdout
    assert (out / "busbw.png").exists() and pd.read_csv(out / "spread.csv")["spread"].tolist() == [0.0, 0.0]


def with_device(run: Path, device: dict, precision: str, model_bytes: int | None = None) -> Path:
    """Give a run the device fields that runs record since GPUs are supported."""
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    records[0].update(device=device, precision=precision, ranks_per_host={"h": records[0]["world_size"]})
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = json.loads((run / "summary.json").read_text())
    summary.update(device=device, precision=precision, ranks_per_host={"h": summary["world_size"]},
                   **({"model_bytes": model_bytes} if model_bytes else {}))
    (run / "summary.json").write_text(json.dumps(summary))
    return run


H100 = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "count_per_node": 8, "cuda": "12.8"}
CPU = {"type": "cpu", "name": "cpu", "count_per_node": 1}


@pytest.mark.parametrize("second, fragment", [
    ((H100, "bf16"), "runs mix device types (cpu, cuda)"),
    ((CPU, "bf16"), "runs mix precisions (bf16, fp32)"),
])
def test_runs_of_different_devices_or_precisions_are_not_one_table(tmp_path, second, fragment):
    a = with_device(make_run(tmp_path / "a", 1, 1000.0), CPU, "fp32")
    b = with_device(make_run(tmp_path / "b", 2, 1800.0), *second)
    proc = harness("report", str(a), str(b), "--out", str(tmp_path / "report"))
    assert proc.returncode == 2 and fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()


def test_header_names_the_device_and_a_cpu_projection_says_so(tmp_path):
    gpu = [with_device(make_run(tmp_path / "g", k, 1000.0 * k), H100, "bf16", 102_228_128) for k in (1, 2)]
    assert harness("report", *map(str, gpu), "--out", str(tmp_path / "rg")).returncode == 0
    text = (tmp_path / "rg" / "report.md").read_text()
    assert "Device **cuda** (NVIDIA H100 80GB HBM3, 8 per host), precision **bf16**" in text
    assert "h × 2" in text and "Projected from a CPU step time" not in text
    cpu = [with_device(make_run(tmp_path / "c", k, 1000.0 * k), CPU, "fp32", 102_228_128) for k in (1, 2)]
    assert harness("report", *map(str, cpu), "--out", str(tmp_path / "rc")).returncode == 0
    assert "**Projected from a CPU step time**" in (tmp_path / "rc" / "report.md").read_text()


def test_report_and_project_give_the_same_projection(tmp_path):
    runs = [with_device(make_run(tmp_path, k, 1000.0 * k * 0.95 ** (k - 1)), H100, "bf16", 102_228_128) for k in (1, 2)]
    (runs[0] / "layers.json").write_text(json.dumps({"forward_s": 0.03, "backward_s": 0.06, "params": [
        {"name": "fc.weight", "bytes": 60_000_000, "ready_s": 0.01},
        {"name": "conv.weight", "bytes": 42_228_128, "ready_s": 0.06}]}))
    flags = ["--world-sizes", "8,64,256", "--network", "nvlink-25gbe-tcp"]
    report = harness("report", *map(str, runs), "--out", str(tmp_path / "r"), *flags)
    assert report.returncode == 0, report.stderr
    project = harness("project", "--from-run", str(runs[0]), *flags, "--json")
    assert project.returncode == 0, project.stderr
    from_project = [json.loads(line)["efficiency"] for line in project.stdout.splitlines()]
    assert pd.read_csv(tmp_path / "r" / "projection.csv")["efficiency"].tolist() == pytest.approx(from_project)
    text = (tmp_path / "r" / "report.md").read_text()
    assert "readiness measured (hooks)" in text and "25 Gbit/s Ethernet (TCP)" in text


def test_peers_side_by_side_with_their_own_efficiency_and_the_ratio(tmp_path):
    runs = []
    for k, harness_rate, peers in ((1, 1000.0, {"horovod": 1100.0, "ddp": 1250.0}),
                                   (2, 1600.0, {"horovod": 1650.0, "ddp": 2250.0})):
        run = make_run(tmp_path, k, harness_rate)
        summary = json.loads((run / "summary.json").read_text())
        summary["peers"] = {name: {"peer": name, "images_per_second": rate} for name, rate in peers.items()}
        (run / "summary.json").write_text(json.dumps(summary))
        runs.append(run)
    proc = harness("report", *map(str, runs), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "report" / "peers.csv")
    assert table["side"].tolist() == ["harness", "horovod", "ddp"] * 2
    assert table["world_size"].tolist() == [1, 1, 1, 2, 2, 2]
    # per worker at k = 2: harness 800, horovod 825, ddp 1125; efficiency against each side's own k = 1
    assert table["efficiency"].tolist() == pytest.approx([1, 1, 1, 0.8, 825 / 1100, 0.9])
    assert table["harness_ratio"].tolist() == pytest.approx([1, 1000 / 1100, 0.8, 1, 800 / 825, 800 / 1125])
    assert "## Against the peers" in (tmp_path / "report" / "report.md").read_text()


def test_shared_host_contention_is_measured_by_the_no_communication_peer():
    from benchmarks.report_comm import shared_host_contention

    runs = [{"world_size": 1, "peers": {"plain": {"images_per_second_per_worker": 1000.0}}},
            {"world_size": 2, "peers": {"plain": {"images_per_second_per_worker": 600.0}}},
            {"world_size": 2, "peers": {"plain": {"images_per_second_per_worker": 650.0}}}]
    assert shared_host_contention(runs) == pytest.approx({1: 1.0, 2: 1000 / 625})
    assert shared_host_contention(runs[:1] + [{"world_size": 2}]) is None  # every k needs its plain run
