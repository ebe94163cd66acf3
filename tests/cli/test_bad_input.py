"""Every user mistake: exit code 2, one line on stderr, no traceback, and the user's files untouched."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["train", "--model", "mlp", "--dataset", "synthetic", "--max-steps", "2", "--threads", "1"]


def snapshot(base: Path) -> dict:
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


@pytest.fixture
def user_files(tmp_path):
    """A workspace with things a user would not want lost."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "records.jsonl").write_text('{"kind": "run", "rank": 0, "world_size": 1}\n')
    (tmp_path / "run" / "notes.txt").write_text("mine\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("my report\n")
    (tmp_path / "bad.yaml").write_text("reference_lr: [0.1\n")
    (tmp_path / "unknown.yaml").write_text("learning_rate: 0.1\n")
    (tmp_path / "recipe.txt").write_text("{}\n")
    (tmp_path / "hosts").write_text("node1 slots=0\n")
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "summary.json").write_text(
        '{"kind": "train", "world_size": 1, "global_batch": 32, "per_worker_batch": 32, '
        '"images_per_second": 100.0, "step_time_s_median": 0.32}')
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint.pkl").write_bytes(b"not a pickle")
    return tmp_path


CASES = [
    ("train-batch-zero", [*TRAIN, "--per-worker-batch", "0", "--out", "{t}/new"], "--per-worker-batch must be >= 1"),
    ("train-batch-text", [*TRAIN, "--per-worker-batch", "abc", "--out", "{t}/new"], "invalid int value"),
    ("train-epochs-text", [*TRAIN, "--epochs", "x", "--out", "{t}/new"], "invalid float value"),
    ("train-preset", [*TRAIN, "--preset", "nope", "--out", "{t}/new"], "invalid choice"),
    ("train-backend", [*TRAIN, "--backend", "jax", "--out", "{t}/new"], "invalid choice"),
    ("train-no-out", TRAIN, "the following arguments are required: --out"),
    ("recipe-missing", [*TRAIN, "--recipe", "{t}/missing.yaml", "--out", "{t}/new"], "cannot read recipe"),
    ("recipe-malformed", [*TRAIN, "--recipe", "{t}/bad.yaml", "--out", "{t}/new"], "not valid YAML"),
    ("recipe-extension", [*TRAIN, "--recipe", "{t}/recipe.txt", "--out", "{t}/new"], ".json, .yaml or .yml"),
    ("recipe-unknown-field", [*TRAIN, "--recipe", "{t}/unknown.yaml", "--out", "{t}/new"], "unknown recipe field"),
    ("set-bad-value", [*TRAIN, "--set", "momentum=2", "--out", "{t}/new"], "Recipe.momentum must be in [0, 1)"),
    ("set-no-equals", [*TRAIN, "--set", "momentum", "--out", "{t}/new"], "--set expects FIELD=VALUE"),
    ("set-unknown-field", [*TRAIN, "--set", "lr=1", "--out", "{t}/new"], "unknown recipe field(s): lr"),
    ("set-warmup-too-long", [*TRAIN, "--set", "warmup_epochs=10", "--out", "{t}/new"], "Recipe.warmup_epochs"),
    ("out-has-files", [*TRAIN, "--out", "{t}/run"], "already has files; pass --overwrite"),
    ("out-is-a-file", [*TRAIN, "--out", "{t}/afile"], "exists and is not a directory"),
    ("data-dir-missing", ["train", "--max-steps", "2", "--data-dir", "{t}/nodata", "--out", "{t}/new"],
     "Fashion-MNIST not found"),
    ("model-unknown", ["train", "--model", "vgg", "--dataset", "synthetic", "--out", "{t}/new"], "model must be one of"),
    ("resume-no-checkpoint", [*TRAIN, "--resume", "--out", "{t}/run"], "--resume: no checkpoint.pkl"),
    ("resume-corrupt", [*TRAIN, "--resume", "--out", "{t}/ckpt"], "is not a harness checkpoint"),
    ("threads-zero", [*TRAIN, "--threads", "0", "--out", "{t}/new"], "--threads must be >= 1"),
    ("max-steps-negative", [*TRAIN, "--max-steps", "-1", "--out", "{t}/new"], "--max-steps must be >= 1"),
    ("checkpoint-negative", [*TRAIN, "--checkpoint-steps", "-2", "--out", "{t}/new"], "--checkpoint-steps"),
    ("nonfinite-policy", [*TRAIN, "--nonfinite", "ignore", "--out", "{t}/new"], "invalid choice"),
    ("report-missing-dir", ["report", "{t}/nope", "--out", "{t}/r2"], "not a run directory"),
    ("report-partial-run", ["report", "{t}/run", "--out", "{t}/r2"], "the run failed or was interrupted"),
    ("report-existing", ["report", "{t}/done", "--out", "{t}/report"], "already has report.md; pass --overwrite"),
    ("report-bad-network", ["report", "{t}/run", "--out", "{t}/r2", "--gpus-per-node", "0"], "projection network"),
    ("hostfile-bad-slots", ["hostfile", "check", "{t}/hosts"], "slots must be a positive integer"),
    ("hostfile-missing", ["hostfile", "check", "{t}/nohosts"], "cannot read hostfile"),
    ("project-bytes", ["project", "--model-bytes", "lots", "--compute-s", "0.1", "--gpus-per-node", "8",
                       "--inter-gbps", "10"], "size must look like"),
    ("project-bandwidth", ["project", "--model-bytes", "1MB", "--compute-s", "0.1", "--gpus-per-node", "8",
                           "--inter-gbps", "0"], "inter_bandwidth must be > 0"),
    ("bench-sizes", ["bench", "allreduce", "--sizes", "2XB", "--out", "{t}/new"], "--sizes"),
    ("bench-steps", ["bench", "throughput", "--steps", "0", "--out", "{t}/new"], "--steps must be >= 1"),
    ("sweep-world-size", ["sweep", "--world-sizes", "0", "--out", "{t}/new", "--", "bench", "allreduce"], ">= 1"),
    ("experiment-workers", ["experiment", "batch-scaling", "--workers", "0", "--out", "{t}/new"], "--workers"),
    ("experiment-method", ["experiment", "batch-scaling", "--methods", "adam", "--out", "{t}/new"], "unknown method"),
    ("experiment-epochs", ["experiment", "batch-scaling", "--epochs", "1", "--out", "{t}/new"], "--epochs"),
    ("unknown-command", ["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("name, args, fragment", CASES, ids=[c[0] for c in CASES])
def test_user_mistake_is_one_line_exit_2_and_loses_nothing(user_files, name, args, fragment):
    before = snapshot(user_files)
    argv = [a.format(t=user_files) for a in args]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "harness_cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(user_files) == before
    assert not (user_files / "new").exists() or not any((user_files / "new").iterdir())


def test_fault_variable_is_validated():
    env = {**os.environ, "HARNESS_FAULT": "one:two"}
    proc = subprocess.run([sys.executable, "-m", "harness_cli", *TRAIN, "--out", "/nonexistent/x"], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "HARNESS_FAULT must be RANK:STEP:MODE" in proc.stderr


def test_at_least_25_cases():
    assert len(CASES) >= 25
