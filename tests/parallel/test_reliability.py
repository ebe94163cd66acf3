"""Worker failure, checkpoint/resume and the non-finite gradient policy, under real launchers."""

import json
import sys
import time

import numpy as np
import pytest

from harness.runtime.launch import launch_command

pytestmark = pytest.mark.parallel
HARNESS = [sys.executable, "-m", "harness_cli", "train"]
SMALL = ["--model", "mlp", "--dataset", "synthetic", "--threads", "1", "--per-worker-batch", "16", "--timing-skip", "0"]


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("launcher, mode", [("horovodrun", "kill"), ("horovodrun", "raise"), ("mpirun", "kill"),
                                            ("mpirun", "raise")])
def test_a_failing_rank_ends_the_job_non_zero_within_60_s(tmp_path, launched, launcher, mode):
    cmd = launch_command([*HARNESS, *SMALL, "--max-steps", "100000", "--out", str(tmp_path / "run")],
                         launcher=launcher, np=2, **({"hosts": "localhost:2"} if launcher == "horovodrun"
                                                     else {"hostfile": "hostfiles/localhost"}))
    started = time.monotonic()
    proc = launched(cmd, timeout=120, HARNESS_FAULT=f"1:3:{mode}")
    assert proc.returncode != 0 and time.monotonic() - started < 60, proc.output
    if mode == "raise":
        assert "harness: error: rank 1 failed at step 3: RuntimeError: injected failure" in proc.output
        assert json.loads((tmp_path / "run" / "failure-rank1.json").read_text())["step"] == 3
        assert not (tmp_path / "run" / "failure-rank0.json").exists()
        report = launched([sys.executable, "-m", "harness_cli", "report", str(tmp_path / "run"), "--out",
                           str(tmp_path / "report")])
        assert report.returncode == 2 and "the run failed: rank 1 failed at step 3" in report.stderr


def _resume_pair(tmp_path, launched, backend, np_, *extra):
    args = [*SMALL, "--backend", backend, "--max-steps", "12", "--checkpoint-steps", "3", "--save-params", *extra]
    where = {"hosts": f"localhost:{np_}"}
    straight = launched(launch_command([*HARNESS, *args, "--out", str(tmp_path / "a")], launcher="horovodrun",
                                       np=np_, **where))
    assert straight.returncode == 0, straight.output
    killed = launched(launch_command([*HARNESS, *args, "--out", str(tmp_path / "b")], launcher="horovodrun", np=np_,
                                     **where), HARNESS_FAULT="0:7:kill")
    assert killed.returncode != 0 and not (tmp_path / "b" / "summary.json").exists()
    resumed = launched(launch_command([*HARNESS, *args, "--resume", "--out", str(tmp_path / "b")],
                                      launcher="horovodrun", np=np_, **where))
    assert resumed.returncode == 0, resumed.output
    return tmp_path / "a", tmp_path / "b"


@pytest.mark.parametrize("backend, np_", [("torch", 1), ("torch", 2), ("keras", 1)])
def test_killed_and_resumed_run_ends_with_the_uninterrupted_parameters(tmp_path, launched, backend, np_):
    # LARS + constant warmup (an LR jump, so momentum correction acts) + poly decay: every piece of state matters
    a, b = _resume_pair(tmp_path, launched, backend, np_, "--set", "optimizer=lars", "--set", "warmup=constant",
                        "--set", "warmup_epochs=0.03", "--set", "epochs=1", "--set", "decay=poly")
    np.testing.assert_array_equal(np.load(b / "params.npy"), np.load(a / "params.npy"))
    summary = json.loads((b / "summary.json").read_text())
    assert summary["resumed_from_step"] == 6 and summary["steps"] == 12 and summary["ranks_in_sync"]
    lr = {r["step"]: r["lr"] for r in _records(a) if r["kind"] == "step"}
    resumed_lr = {r["step"]: r["lr"] for r in _records(b) if r["kind"] == "step" and r["step"] >= 6}
    assert resumed_lr == {s: lr[s] for s in range(6, 12)}
    assert any(r["kind"] == "resume" and r["start_step"] == 6 for r in _records(b))


def test_resume_refuses_a_different_world_size_or_recipe(tmp_path, launched):
    args = [*HARNESS, *SMALL, "--max-steps", "6", "--checkpoint-steps", "3", "--out", str(tmp_path / "r")]
    assert launched(args + ["--max-steps", "3"]).returncode == 0
    two = launched(launch_command(args + ["--resume"], launcher="horovodrun", np=2, hosts="localhost:2"))
    assert two.returncode == 2 and "written with world size 1, this run has 2" in two.output
    other = launched(args + ["--resume", "--set", "momentum=0.5"])
    assert other.returncode == 2 and "recipe differs from the checkpoint's in momentum" in other.stderr


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_nonfinite_skip_leaves_weights_finite_and_holds_the_lr(tmp_path, launched, backend):
    out = tmp_path / "nan"
    cmd = launch_command([*HARNESS, *SMALL, "--backend", backend, "--max-steps", "8", "--nonfinite", "skip",
                          "--save-params", "--out", str(out), "--set", "warmup_epochs=0.5", "--set", "warmup_start_lr=0"],
                         launcher="horovodrun", np=2, hosts="localhost:2")
    proc = launched(cmd, HARNESS_FAULT="1:3:nan")  # NaN on rank 1 only: the averaged gradient is NaN on both
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nonfinite_steps_skipped"] == 1 and summary["ranks_in_sync"]
    assert np.all(np.isfinite(np.load(out / "params.npy")))
    lr = {r["step"]: r["lr"] for r in _records(out) if r["kind"] == "step" and r["rank"] == 0}
    assert lr[4] == lr[3] and lr[3] > lr[2]  # the skipped step did not advance the schedule


def test_nonfinite_stop_is_one_line_exit_1(tmp_path, launched):
    out = tmp_path / "stop"
    proc = launched([*HARNESS, *SMALL, "--max-steps", "8", "--out", str(out)], HARNESS_FAULT="0:2:nan")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "harness: error: non-finite gradient: the step was not applied "
        "(--nonfinite stop; --nonfinite skip skips such steps and counts them)"]
    assert not (out / "summary.json").exists()
