"""Launch across two emulated hosts from the first, as from a login node: horovodrun (Gloo and --mpi, -H and
--hostfile) and mpirun --hostfile train 5 steps with ranks in sync and records naming both hosts;
``bench allreduce`` and ``sweep --hostfile`` run across them too."""

from __future__ import annotations

import json
import sys

import pytest

from harness.runtime.records import read_records

TRAIN = ["--model", "mlp", "--dataset", "synthetic", "--max-steps", "5", "--threads", "1", "--timing-skip", "1"]
HARNESS = [sys.executable, "-m", "harness_cli"]


def launch(cluster, mode: str, out) -> list[str]:
    """The command for one launch mode, run on node1."""
    hosts = ["-H", "node1:1,node2:1"]
    if mode == "horovodrun-gloo":
        return [*HARNESS, "train", "--np", "2", *hosts, "--controller", "gloo",
                f"--launcher-args={cluster.args('horovodrun')}", *TRAIN, "--out", str(out)]
    if mode == "horovodrun-mpi":
        return [*HARNESS, "train", "--np", "2", *hosts, "--controller", "mpi",
                f"--launcher-args={cluster.args('horovodrun')}", *TRAIN, "--out", str(out)]
    if mode == "horovodrun-hostfile":  # typed by hand, as Horovod documents it
        return [f"{sys.prefix}/bin/horovodrun", "-np", "2", "--hostfile", cluster.hostfile,
                "--ssh-identity-file", cluster.key, *HARNESS, "train", *TRAIN, "--out", str(out)]
    return [*HARNESS, "train", "--np", "2", "--launcher", "mpirun", "--hostfile", cluster.hostfile,
            f"--launcher-args={cluster.args('mpirun')}", *TRAIN, "--out", str(out)]


@pytest.mark.parametrize("mode", ["horovodrun-gloo", "horovodrun-mpi", "horovodrun-hostfile", "mpirun-hostfile"])
def test_train_across_two_hosts(cluster, tmp_path, mode):
    out = tmp_path / "run"
    proc = cluster.on("node1", *launch(cluster, mode, out))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["world_size"] == 2 and summary["ranks_in_sync"], summary
    assert summary["hosts"] == ["node1", "node2"] and summary["ranks_per_host"] == {"node1": 1, "node2": 1}
    run = next(r for r in read_records(out / "records.jsonl") if r["kind"] == "run")
    assert run["rank_hosts"] == ["node1", "node2"] and run["host"] == "node1"


def test_bench_allreduce_and_sweep_across_two_hosts(cluster, tmp_path):
    proc = cluster.on("node1", *HARNESS, "bench", "allreduce", "--np", "2", "-H", "node1:1,node2:1",
                      "--controller", "gloo", f"--launcher-args={cluster.args('horovodrun')}", "--sizes", "1KB..64KB",
                      "--factor", "8", "--iters", "2", "--no-peer", "--out", str(tmp_path / "ar"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((tmp_path / "ar" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["controller"] == "gloo"
    assert [r["size_bytes"] for r in summary["results"]] == [1024, 8192, 65536]
    sweep = cluster.on("node1", *HARNESS, "sweep", "--world-sizes", "1,2", "--hostfile", cluster.hostfile,
                       f"--launcher-args={cluster.args('horovodrun')}", "--out", str(tmp_path / "sw"), "--",
                       "train", *TRAIN)
    assert sweep.returncode == 0, sweep.output
    for k, hosts in ((1, ["node1"]), (2, ["node1", "node2"])):
        summary = json.loads((tmp_path / "sw" / f"k{k}" / "summary.json").read_text())
        assert summary["world_size"] == k and summary["hosts"] == hosts and summary["ranks_in_sync"]
