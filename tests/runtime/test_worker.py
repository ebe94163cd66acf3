"""The worker entry point's job files: typed configs as JSON, checked on reading; one line and exit 2 for a
bad one; errors name fields, and only the CLI writes them as flags."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.jobs import AllreduceJob, ThroughputJob
from harness.runtime.config import DataConfig, RecipeSpec, RunConfig, from_dict, to_dict
from harness.runtime.errors import ConfigError, RunFailure
from harness.runtime.worker import TrainJob, job_from_dict, job_to_dict, read_job, worker_command, write_job
from harness_cli.errors import flag, message
from tests.conftest import ROOT

JOBS = [
    TrainJob(config=RunConfig(out=Path("runs/a"), model="mlp", data=DataConfig(source="synthetic", train_size=64),
                              threads=1, max_steps=3, nonfinite="skip"),
             recipe=RecipeSpec(changes={"per_worker_batch": 8, "milestones_epochs": [1.5], "warmup": "none"})),
    ThroughputJob(out=Path("runs/t"), model="mlp", steps=6, batches_per_iter=3, input_shape=(1, 8, 8),
                  peers=("plain", "horovod"), fusion_threshold_mb=0.5),
    AllreduceJob(out=Path("runs/ar"), sizes="1KB..4KB", iters=2, peer=False, device="cpu"),
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.kind)
def test_a_job_survives_a_json_round_trip(tmp_path, job):
    path = write_job(job, tmp_path / "job.json")
    data = json.loads(path.read_text())
    assert data["kind"] == job.kind
    assert read_job(path) == job_from_dict(data) == job
    assert job_to_dict(read_job(path)) == data


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.kind)
def test_the_worker_command_carries_the_job_for_hosts_without_the_run_directory(tmp_path, job):
    path = write_job(job, tmp_path / "job.json")
    command = worker_command(path)
    assert command[-3:-1] == [str(path), "--inline"]
    path.unlink()  # a host that cannot see the run directory still reads the same job
    assert read_job(path, command[-1]) == job
    with pytest.raises(ConfigError, match="not JSON"):
        read_job(path, "bm90IGpzb24=")  # base64 of "not json"


def test_run_config_round_trips_on_its_own_with_nested_data():
    config = RunConfig(out="r", data=DataConfig(source="x.npz", layout="NHWC", test_size=10), elastic=True)
    assert to_dict(config)["data"] == {"source": "x.npz", "data_dir": None, "layout": "NHWC", "train_size": None,
                                       "test_size": 10, "image_size": 224, "data_workers": None, "bad_images": "stop",
                                       "min_crop_area": 0.08, "eval_crop_fraction": 0.875, "flip": True,
                                       "jpeg_decoder": "window"}
    assert from_dict(RunConfig, json.loads(json.dumps(to_dict(config)))) == config


@pytest.mark.parametrize("data, fragment, fields", [
    ({"kind": "train", "config": {"out": "r", "threads": 0}}, "threads must be >= 1, got 0", ("threads",)),
    ({"kind": "train", "config": {"out": "r", "data": {"layout": "HWC"}}}, "data.layout must be NCHW or NHWC",
     ("data.layout",)),
    ({"kind": "train", "config": {"out": "r", "lr": 1}}, "RunConfig has no field(s) lr", ()),
    ({"kind": "train", "config": {}}, "RunConfig: ", ()),
    ({"kind": "throughput", "out": "t", "steps": 2, "batches_per_iter": 3}, "steps (2) must be >= batches_per_iter (3)",
     ("steps", "batches_per_iter")),
    ({"kind": "allreduce", "out": "a", "sizes": "2XB"}, "sizes: size must look like", ("sizes",)),
    ({"kind": "fit"}, "kind must be one of train, throughput, allreduce, got 'fit'", ("kind",)),
])
def test_a_bad_job_is_a_config_error_naming_the_field(data, fragment, fields):
    with pytest.raises(ConfigError) as caught:
        job_from_dict(data)
    assert fragment in str(caught.value) and caught.value.fields == fields
    assert "--" not in str(caught.value)


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "is not JSON"),
    ('{"kind": "train", "config": {"out": "r", "nonfinite": "ignore"}}',
     "nonfinite must be one of stop, skip, got 'ignore'"),
    ('[1, 2]', "a job must be a JSON object"),
    (None, "cannot read job"),
])
def test_the_worker_given_a_bad_job_file_exits_2_with_one_line(tmp_path, content, fragment):
    path = tmp_path / "job.json"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "harness.runtime.worker", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "--" not in lines[0]


def test_the_cli_writes_each_named_field_as_its_flag():
    exc = ConfigError("max_steps does not go with elastic (its commits; horovod.tensorflow.elastic)",
                      fields=("max_steps", "elastic"))
    assert message(exc) == "--max-steps does not go with --elastic (its commits; horovod.tensorflow.elastic)"
    assert message(ConfigError("data.source x.npz: is it NCHW? (layout)", fields=("data.source", "layout"))) == \
        "--dataset x.npz: is it NCHW? (--layout)"
    assert message(RunFailure("stop (nonfinite stop)", fields=("nonfinite",))) == "stop (--nonfinite stop)"
    assert message(ConfigError("threads must be >= 1", fields=())) == "threads must be >= 1"  # names no field
    assert (flag("per_worker_batch"), flag("data.train_size"), flag("world_sizes")) == \
        ("--per-worker-batch", "--train-size", "--world-sizes")


def _cli_flags() -> set[str]:
    from harness_cli.main import build_parser

    found, todo = set(), [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            found.update(s for s in action.option_strings if s.startswith("--"))
            if hasattr(action, "_name_parser_map"):
                todo.extend(action._name_parser_map.values())
    return found - {"--help"}


def _raised_text(node: ast.Raise) -> str:
    return " ".join(c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str))


def test_no_library_error_names_a_cli_flag():
    flags = _cli_flags()
    assert {"--per-worker-batch", "--dataset", "--np", "--peers"} <= flags
    files = [p for package in ("harness", "backends", "benchmarks") for p in (ROOT / package).rglob("*.py")]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise):
                text = _raised_text(node)
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {f}" for f in flags
                          if f" {f}" in f" {text}" or f"({f}" in text]
    assert found == []
