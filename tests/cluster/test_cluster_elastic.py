"""Elastic training across 3 emulated hosts: one host leaves mid-run and comes back.

``harness train --elastic`` under horovodrun's elastic driver, with the discovery script that
``harness cluster`` writes; ``harness cluster mark node3 down|up`` takes the host out of it and puts
it back. Checked from the run's records: k goes 3 → 2 → 3, each change within 60 s of the host
leaving or coming back; every step's LR is the closed form of the recipe for that step's global batch;
the steps of every epoch tile its permutation without overlap (every image once); ranks in sync.
"""

from __future__ import annotations

import json
import time

import pytest

from harness.elastic import resume_step
from harness.runtime.config import RecipeSpec
from tests.cluster.conftest import HARNESS, harness

N, PER_WORKER, EPOCHS = 4096, 16, 6
SPEC = RecipeSpec(changes={"per_worker_batch": PER_WORKER, "epochs": float(EPOCHS)})


def records(out) -> list[dict]:
    path = out / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(job, log, what: str, predicate, timeout: float) -> float:
    """Poll the records until ``predicate(records)``; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        if job.poll() is not None:
            pytest.fail(f"the job ended (exit {job.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.25)
    job.kill()
    pytest.fail(f"no {what} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def test_a_host_leaves_and_comes_back_and_the_recipe_follows_k(make_cluster, tmp_path):
    cluster = make_cluster(hosts=3)
    out, log, state = tmp_path / "elastic", tmp_path / "elastic.log", str(cluster.state_dir)
    argv = [*HARNESS, "train", "--elastic", "--np", "3", "--min-workers", "2", "--max-workers", "3",
            "--host-discovery-script", f"{state}/discover-hosts.sh", f"--launcher-args={cluster.args('horovodrun')}",
            "--collective-timeout-s", "20", "--model", "mlp", "--dataset", "synthetic", "--train-size", str(N),
            "--test-size", "256", "--per-worker-batch", str(PER_WORKER), "--epochs", str(EPOCHS), "--threads", "1",
            "--commit-steps", "5", "--out", str(out)]
    job = cluster.popen_on("node1", *argv, log=log, HARNESS_STEP_SLEEP_S="0.06")
    steps = lambda k: [r for r in records(out) if r["kind"] == "step" and r["world_size"] == k]  # noqa: E731
    resizes = lambda: [r for r in records(out) if r["kind"] == "resize"]  # noqa: E731
    wait_for(job, log, "30 steps on 3 workers", lambda: len(steps(3)) >= 3 * 30, 240)
    assert harness("cluster", "mark", "--state-dir", state, "node3", "down").returncode == 0
    left = time.monotonic()
    shrunk = wait_for(job, log, "a resize to 2 workers", lambda: len(resizes()) >= 1, 60)
    assert shrunk - left < 60
    wait_for(job, log, "30 steps on 2 workers", lambda: len(steps(2)) >= 2 * 30, 120)
    assert harness("cluster", "mark", "--state-dir", state, "node3", "up").returncode == 0
    back = time.monotonic()
    grown = wait_for(job, log, "a resize back to 3 workers", lambda: len(resizes()) >= 2, 120)
    assert grown - back < 120  # a new worker starts Python, torch and Horovod on a loaded 2-core machine
    job.wait(timeout=300)
    output = log.read_text()
    assert job.returncode == 0, output[-4000:]

    everything = records(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["elastic"] and summary["ranks_in_sync"] and summary["world_sizes"] == [3, 2, 3], summary
    assert summary["epochs"] == EPOCHS and summary["hosts"] == ["node1", "node2", "node3"]
    down, up = resizes()
    assert (down["old_world_size"], down["world_size"], up["old_world_size"], up["world_size"]) == (3, 2, 2, 3)
    assert down["hosts"] == ["node1", "node2"] and up["hosts"] == ["node1", "node2", "node3"]
    for change in (down, up):
        recipe = SPEC.resolve(world_size=change["world_size"], dataset_size=N)
        assert change["global_batch"] == change["world_size"] * PER_WORKER == recipe.global_batch
        assert change["peak_lr"] == pytest.approx(recipe.peak_lr, rel=1e-12)
        step = resume_step(recipe, epoch=change["epoch"], consumed=change["consumed"])
        assert change["step"] == step and change["lr"] == pytest.approx(recipe.lr(step), rel=1e-12)

    by_update: dict[int, list[dict]] = {}
    for r in (r for r in everything if r["kind"] == "step"):
        by_update.setdefault(r["update"], []).append(r)
    assert sorted(by_update) == list(range(summary["steps"]))  # every update recorded once, none rolled back twice
    for update, ranks in by_update.items():
        k, step = ranks[0]["world_size"], ranks[0]["step"]
        assert sorted(r["rank"] for r in ranks) == list(range(k)), update  # every rank, once
        assert {(r["step"], r["sample_start"]) for r in ranks} == {(step, ranks[0]["sample_start"])}
        recipe = SPEC.resolve(world_size=k, dataset_size=N)
        assert all(r["lr"] == pytest.approx(float(recipe.lr(step)), rel=1e-12) for r in ranks), update
    for epoch in range(EPOCHS):
        spans = sorted({(r[0]["sample_start"], r[0]["sample_end"], r[0]["world_size"])
                        for r in by_update.values() if r[0]["epoch"] == epoch})
        assert spans[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), (epoch, spans)  # contiguous, no overlap
        last_k = spans[-1][2]
        assert 0 <= N - spans[-1][1] < last_k * PER_WORKER  # only the incomplete last batch left out
