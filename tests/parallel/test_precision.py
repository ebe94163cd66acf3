"""Mixed precision and device records on this machine's CPU, under a real launcher."""

import json
import sys

import numpy as np
import pytest

from harness.runtime.launch import launch_command

pytestmark = pytest.mark.parallel

SMALL = ["--model", "resnet-small", "--dataset", "synthetic", "--train-size", "512", "--test-size", "64",
         "--per-worker-batch", "32", "--max-steps", "6", "--threads", "1", "--timing-skip", "1"]


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_bf16_trains_the_small_resnet_on_two_ranks_in_sync(tmp_path, launched, backend):
    out = tmp_path / backend
    argv = [sys.executable, "-m", "harness_cli", "train", "--backend", backend, *SMALL, "--precision", "bf16",
            "--device", "auto", "--out", str(out), *(["--channels-last"] if backend == "torch" else [])]
    proc = launched(launch_command(argv, launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks_in_sync"] and summary["world_size"] == 2 and summary["precision"] == "bf16"
    assert summary["device"]["type"] == "cpu" and summary["channels_last"] is True  # Keras models are NHWC
    assert sum(summary["ranks_per_host"].values()) == 2 and len(summary["hosts"]) == 1
    steps = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r["kind"] == "step"]
    assert len(losses) == 12 and np.isfinite(losses).all()
    run = steps[0]
    assert run["precision"] == "bf16" and run["rank_hosts"] == [run["host"]] * 2
    assert run["horovod"]["gpu_operations"] is None and run["horovod"]["nccl_built"] is False
    assert summary["horovod"] == run["horovod"]  # the summary says what ran where, too


def test_bench_throughput_measures_its_peers_in_the_same_ranks(tmp_path, launched):
    out = tmp_path / "tp"
    argv = [sys.executable, "-m", "harness_cli", "bench", "throughput", "--model", "mlp", "--steps", "6",
            "--batches-per-iter", "3", "--warmup-steps", "1", "--peers", "plain,horovod,ddp", "--out", str(out)]
    proc = launched(launch_command(argv, launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["peers"]) == ["plain", "horovod", "ddp"]
    for name, peer in summary["peers"].items():
        assert peer["peer"] == name and len(peer["step_time_s_per_rank"]) == 2
        assert peer["images_per_second"] == pytest.approx(sum(summary["per_worker_batch"] / t
                                                              for t in peer["step_time_s_per_rank"]))
        assert summary[f"ratio_to_{name}"] == pytest.approx(summary["images_per_second_per_worker"]
                                                            / peer["images_per_second_per_worker"])
        assert f"harness / {name} = " in proc.output
    assert summary["device"]["type"] == "cpu"


def test_peers_keep_the_engines_memory_format_with_channels_last(tmp_path, launched):
    """Channels-last inputs, contiguous weights: Horovod's broadcast_parameters refuses other layouts, so the
    bare Horovod peer crashed here when its weights were converted to channels-last."""
    out = tmp_path / "cl"
    argv = [sys.executable, "-m", "harness_cli", "bench", "throughput", "--model", "resnet-small", "--channels-last",
            "--precision", "bf16", "--per-worker-batch", "8", "--steps", "3", "--batches-per-iter", "3",
            "--warmup-steps", "1", "--peers", "plain,horovod", "--out", str(out)]
    proc = launched(launch_command(argv, launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["channels_last"] is True and list(summary["peers"]) == ["plain", "horovod"]
    assert all(len(peer["step_time_s_per_rank"]) == 2 for peer in summary["peers"].values())
