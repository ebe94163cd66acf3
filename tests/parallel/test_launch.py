"""``train``/``bench`` launch themselves as k workers (``--np``), with launcher flags passed through."""

import json
import sys

import pytest

from harness.runtime.launch import forwarded_variables, launch_command, without_options

HARNESS = [sys.executable, "-m", "harness_cli"]


def test_launch_options_are_removed_in_both_spellings():
    argv = ["train", "--np", "2", "-H", "a:1,b:1", "--launcher=mpirun", "--model", "mlp", "--launcher-args",
            "-x FOO", "--out", "d"]
    assert without_options(argv, ("--np", "-H", "--launcher", "--launcher-args")) == ["train", "--model", "mlp",
                                                                                   "--out", "d"]


def test_mpirun_forwards_every_horovod_nccl_and_harness_variable():
    env = {"PATH": "/bin", "HOROVOD_CYCLE_TIME": "5", "NCCL_DEBUG": "INFO", "HARNESS_FAULT": "1:2:kill",
           "HOME": "/root", "HOROVOD_TIMELINE": "t.json"}
    assert forwarded_variables(env) == ["PATH", "HARNESS_FAULT", "HOROVOD_CYCLE_TIME", "HOROVOD_TIMELINE",
                                        "NCCL_DEBUG"]
    cmd = launch_command(["w"], launcher="horovodrun", np=2, extra=["--timeline-filename", "t.json"])
    assert cmd[-3:] == ["--timeline-filename", "t.json", "w"]


@pytest.mark.parallel
def test_train_launches_itself_with_horovodrun(tmp_path, launched):
    out = tmp_path / "run"
    proc = launched([*HARNESS, "train", "--np", "2", "--controller", "gloo", "--launcher-args=--verbose",
                     "--collective-timeout-s", "20", "--model", "mlp", "--dataset", "synthetic", "--max-steps", "3",
                     "--threads", "1", "--out", str(out)])
    assert proc.returncode == 0, proc.output
    assert "harness: launching: " in proc.output and "--verbose" in proc.output
    assert "HOROVOD_GLOO_RENDEZVOUS_ADDR" in proc.output  # printed by horovodrun --verbose
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"]


@pytest.mark.parallel
def test_bench_allreduce_launches_itself_with_mpirun(tmp_path, launched):
    out = tmp_path / "ar"
    proc = launched([*HARNESS, "bench", "allreduce", "--np", "2", "--launcher", "mpirun", "--hostfile",
                     "hostfiles/localhost", "--sizes", "1KB..4KB", "--iters", "2", "--no-peer", "--out", str(out)],
                    HOROVOD_CYCLE_TIME="2")
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["cycle_time_ms"] == 2.0  # forwarded by -x to every rank
