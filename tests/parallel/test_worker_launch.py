"""``python -m harness.runtime.worker JOB.json`` for real: one typed job file, two ranks under horovodrun."""

import json

import pytest

from harness.runtime.config import DataConfig, RecipeSpec, RunConfig
from harness.runtime.launch import launch_command
from harness.runtime.records import JOB
from harness.runtime.worker import TrainJob, worker_command, write_job

pytestmark = pytest.mark.parallel


def test_two_ranks_train_one_job_file(tmp_path, launched):
    out = tmp_path / "run"
    job = TrainJob(config=RunConfig(out=out, model="mlp", data=DataConfig(source="synthetic"), threads=1, max_steps=4,
                                    timing_skip=1, save_params=True),
                   recipe=RecipeSpec(changes={"per_worker_batch": 16}))
    path = write_job(job, out / JOB)  # the job lives in its run directory, which rank 0 then claims
    proc = launched(launch_command(worker_command(path), launcher="horovodrun", np=2, hosts="localhost:2"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] and summary["global_batch"] == 32
    assert summary["steps"] == 4 and (out / "params.npy").exists() and (out / JOB).exists()
    assert proc.output.count("images/s on 2 workers") == 1  # rank 0 prints the result line


def test_a_job_error_is_one_line_from_rank_0_and_exit_2(tmp_path, launched):
    out = tmp_path / "run"
    job = TrainJob(config=RunConfig(out=out, model="nosuchpkg.models:build", data=DataConfig(source="synthetic"),
                                    threads=1, max_steps=2))
    proc = launched([*worker_command(write_job(job, out / JOB))])
    assert proc.returncode == 2, proc.output
    assert proc.stderr.strip().splitlines() == [
        "harness: error: model nosuchpkg.models:build: cannot import nosuchpkg.models: ModuleNotFoundError: "
        "No module named 'nosuchpkg'"]
