"""``harness project``: the table, --json, the base world size, --from-run, --plot, help, and bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = ["project", "--model-bytes", "98MB", "--compute-s", "0.25", "--gpus-per-node", "8", "--inter-gbps", "50",
        "--intra-gbps", "160", "--algorithm", "hierarchical"]


def harness(*args):
    return subprocess.run([sys.executable, "-m", "harness_cli", *args], cwd=ROOT, capture_output=True, text=True)


def rows_of(proc):
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_json_gives_one_object_per_world_size():
    rows = rows_of(harness(*BASE, "--world-sizes", "8,16,32,64,128,256", "--base-world-size", "8", "--json"))
    assert [r["world_size"] for r in rows] == [8, 16, 32, 64, 128, 256]
    assert rows[0]["efficiency"] == 1.0 and all(0 < r["efficiency"] <= 1 for r in rows)
    assert all(b["step_time_s"] >= a["step_time_s"] for a, b in zip(rows, rows[1:]))
    assert [r["nodes"] for r in rows] == [1, 2, 4, 8, 16, 32]
    assert rows[-1]["images_per_second"] == pytest.approx(256 * 32 / rows[-1]["step_time_s"])


def test_a_single_world_size_is_not_100_percent():
    (row,) = rows_of(harness("project", "--model", "resnet50", "--compute-s", "0.232", "--world-sizes", "256",
                             "--json"))
    assert row["base_world_size"] == 1 and 0.8 < row["efficiency"] < 0.95


def test_table_names_the_baseline_network_and_defaults():
    proc = harness("project", "--model", "resnet50", "--compute-s", "0.232")
    assert proc.returncode == 0, proc.stderr
    assert "efficiency relative to k0 = 1" in proc.stdout and "100 Gbit/s RoCE" in proc.stdout
    assert "Horovod fusion 128 MiB / cycle 1 ms" in proc.stdout and "54 tensors" in proc.stdout


def _subparser(name):
    from harness_cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name]


@pytest.mark.parametrize("command", ["project", "report"])
def test_every_flag_documents_its_default(command):
    actions = [a for a in _subparser(command)._actions if a.option_strings and a.dest != "help"]
    assert len(actions) >= (20 if command == "project" else 15)
    for action in actions:
        assert "default" in action.help, action.option_strings
    text = re.sub(r"\s+", " ", harness(command, "--help").stdout)
    for unit in ("Gbit/s", "µs", "MiB", " ms", "0-1"):
        assert unit in text, unit


def test_project_and_report_share_defaults():
    project = re.sub(r"\s+", " ", harness("project", "--help").stdout)
    report = re.sub(r"\s+", " ", harness("report", "--help").stdout)
    for flag in ("--network", "--fusion-mb", "--cycle-ms", "--algorithm", "--base-world-size", "--world-sizes",
                 "--sigma", "--interference", "--inter-gbps"):
        assert project.split(flag, 2)[2].split(" --")[0] == report.split(flag, 2)[2].split(" --")[0], flag


def make_run(base: Path, *, layers: bool) -> Path:
    run = base / "k1"
    run.mkdir(parents=True)
    steps = [0.1, 0.102, 0.098, 0.101, 0.099, 0.1, 0.103, 0.097]
    records = [{"kind": "run", "rank": 0, "world_size": 1}]
    records += [{"kind": "step", "rank": 0, "world_size": 1, "step": i, "step_time_s": t} for i, t in enumerate(steps)]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "summary.json").write_text(json.dumps({
        "kind": "throughput", "world_size": 1, "global_batch": 32, "per_worker_batch": 32, "images_per_second": 320.0,
        "step_time_s_median": 0.1, "model": "resnet-small", "model_bytes": 4 * 1000,
        "device": {"type": "cuda", "name": "test GPU"}}))
    if layers:  # the last layer (600 bytes) ready early in backward, the first (400 bytes) at its end
        (run / "layers.json").write_text(json.dumps({"forward_s": 0.03, "backward_s": 0.06, "params": [
            {"name": "fc.weight", "bytes": 2400, "ready_s": 0.01}, {"name": "conv.weight", "bytes": 1600,
                                                                    "ready_s": 0.06}]}))
    return run


def test_from_run_takes_bytes_compute_sigma_and_measured_readiness(tmp_path):
    run = make_run(tmp_path, layers=True)
    proc = harness("project", "--from-run", str(run), "--world-sizes", "8,16")
    assert proc.returncode == 0, proc.stderr
    assert "2 tensors, readiness measured (hooks), compute 100.0 ms, n = 32" in proc.stdout
    assert "σ = 0.02224 (measured" in proc.stdout  # 1.4826 · MAD (0.0015) / median (0.1)
    uniform = make_run(tmp_path / "u", layers=False)
    assert "readiness uniform in bytes" in harness("project", "--from-run", str(uniform)).stdout


def test_plot_is_written_once(tmp_path):
    png = tmp_path / "projection.png"
    proc = harness("project", "--model", "resnet50", "--compute-s", "0.232", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and f"plot: {png}" in proc.stdout
    again = harness("project", "--model", "resnet50", "--compute-s", "0.232", "--plot", str(png))
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.parametrize("args", [["--model-bytes", "lots"], ["--inter-gbps", "0"], ["--world-sizes", "8,x"],
                                  ["--algorithm", "tree"], ["--network", "nope"], ["--base-world-size", "0"],
                                  ["--inter-efficiency", "1.5"], ["--fusion-mb", "-1"],
                                  ["--input-images-per-s", "0"], ["--storage-gbps", "10"],
                                  ["--storage-gbps", "10", "--image-bytes", "big"]])
def test_bad_input_is_one_line_exit_2(args):
    proc = harness(*BASE, *args)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_missing_model_and_missing_run_are_one_line(tmp_path):
    for args in (["project"], ["project", "--from-run", str(tmp_path / "nope")], ["project", "--compute-s", "0.1"]):
        proc = harness(*args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_the_input_side_says_where_the_job_turns_input_or_storage_bound(tmp_path):
    args = ["project", "--model", "resnet50", "--compute-s", "0.1", "--per-worker-batch", "256",
            "--input-images-per-s", "20000", "--storage-gbps", "100", "--image-bytes", "100000"]
    rows = rows_of(harness(*args, "--json"))
    # 8 GPUs of a node need 8·256 images a step from 20,000 images/s: 102.4 ms
    assert all(r["input_s"] == pytest.approx(8 * 256 / 20000) for r in rows)
    # all k workers read k·256 images of 100 kB a step through 12.5 GB/s
    assert all(r["storage_s"] == pytest.approx(r["world_size"] * 256 * 1e5 / 12.5e9) for r in rows)
    assert [r["bound"] for r in rows][-3:] == ["storage"] * 3 and rows[-1]["step_time_s"] == rows[-1]["storage_s"]
    proc = harness(*args, "--plot", str(tmp_path / "p.png"))
    assert "input side: storage-bound from k = 64" in proc.stdout and (tmp_path / "p.png").exists()
    plain = rows_of(harness(*args[:7], "--json"))
    assert all(r["bound"] in ("compute", "communication") and r["input_s"] is None for r in plain)
