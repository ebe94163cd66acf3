"""Every user mistake: exit code 2, one line on stderr, no traceback, and the user's files untouched."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    rng = np.random.default_rng(0)
    good = {"x_train": rng.integers(0, 255, (8, 1, 8, 8)).astype(np.uint8), "y_train": np.arange(8) % 2,
            "x_test": rng.integers(0, 255, (4, 1, 8, 8)).astype(np.uint8), "y_test": np.arange(4) % 2}
    np.savez(tmp_path / "nolabels.npz", **{k: v for k, v in good.items() if k != "y_test"})
    np.savez(tmp_path / "mismatch.npz", **{**good, "y_train": good["y_train"][:5]})
    np.savez(tmp_path / "nan.npz", **{**good, "x_train": np.full((8, 1, 8, 8), np.nan, np.float32)})
    np.savez(tmp_path / "good.npz", **good)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint.pkl").write_bytes(b"not a pickle")
    _image_layouts(tmp_path)
    return tmp_path


def _image_layouts(t: Path) -> None:
    """Image folders and shards, good and bad (tests.runtime.test_images has the writers)."""
    from tests.runtime.test_images import _png, _tar, make_folder

    make_folder(t / "imgs", per_class=2, val_per_class=1)
    make_folder(t / "emptyclass", per_class=2, val_per_class=1)
    (t / "emptyclass" / "train" / "fox").mkdir()
    (t / "emptyclass" / "val" / "fox").mkdir()
    make_folder(t / "mismatch", per_class=2, val_per_class=1)
    (t / "mismatch" / "val" / "eel").rename(t / "mismatch" / "val" / "emu")
    make_folder(t / "noval", per_class=2, val_per_class=1)
    for f in (t / "noval" / "val").rglob("*.jpg"):
        f.unlink()
    for d in sorted((t / "noval" / "val").iterdir()):
        d.rmdir()
    (t / "noval" / "val").rmdir()
    (t / "shards").mkdir()
    _tar(t / "shards" / "train-0.tar", [("a.png", _png()), ("a.cls", b"cat")])
    _tar(t / "shards" / "val-0.tar", [("a.png", _png()), ("a.cls", b"1")])


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
    ("model-not-importable", [*TRAIN, "--model", "nosuchpkg.models:build", "--out", "{t}/new"],
     "cannot import nosuchpkg.models: ModuleNotFoundError"),
    ("model-import-raises", [*TRAIN, "--model", "tests.helpers.broken_import:build", "--out", "{t}/new"],
     "cannot import tests.helpers.broken_import: ImportError"),
    ("model-no-function", [*TRAIN, "--model", "tests.helpers.mymodel:nothing", "--out", "{t}/new"],
     "has no callable 'nothing'"),
    ("model-builder-raises", [*TRAIN, "--model", "tests.helpers.mymodel:raises", "--out", "{t}/new"],
     "the builder raised RuntimeError: my builder is broken"),
    ("model-wrong-type", [*TRAIN, "--model", "tests.helpers.mymodel:wrong_type", "--out", "{t}/new"],
     "the builder returned dict, not a Module"),
    ("model-keras-wrong-type", [*TRAIN, "--backend", "keras", "--model", "tests.helpers.mymodel:build",
                                "--out", "{t}/new"], "the builder returned Sequential, not a Model"),
    ("dataset-unknown", [*TRAIN[:-4], "--dataset", "data.csv", "--out", "{t}/new"],
     "a path ending in .npz, an image folder"),
    ("dataset-missing-path", [*TRAIN[:-4], "--dataset", "{t}/nowhere/imagenet", "--out", "{t}/new"],
     "--dataset: no such file or directory"),
    ("images-empty-class", [*TRAIN[:-4], "--dataset", "{t}/emptyclass", "--out", "{t}/new"], "fox has no images"),
    ("images-class-mismatch", [*TRAIN[:-4], "--dataset", "{t}/mismatch", "--out", "{t}/new"], "different classes"),
    ("images-no-val", [*TRAIN[:-4], "--dataset", "{t}/noval", "--out", "{t}/new"], "has no val/ folder"),
    ("images-not-a-folder-of-classes", [*TRAIN[:-4], "--dataset", "{t}/run", "--out", "{t}/new"],
     "has no train/ folder"),
    ("shards-no-match", [*TRAIN[:-4], "--dataset", "{t}/shards/train-{{5..9}}.tar", "--out", "{t}/new"],
     "no shard matches"),
    ("shards-cls-not-int", [*TRAIN[:-4], "--dataset", "{t}/shards/train-*.tar", "--out", "{t}/new"],
     "is not a class index"),
    ("shards-no-val-name", [*TRAIN[:-4], "--dataset", "{t}/shards/*.tar", "--out", "{t}/new"],
     "must contain 'train'"),
    ("images-size", [*TRAIN[:-4], "--dataset", "{t}/imgs", "--image-size", "0", "--out", "{t}/new"],
     "--image-size must be >= 1"),
    ("images-workers", [*TRAIN[:-4], "--dataset", "{t}/imgs", "--data-workers", "-1", "--out", "{t}/new"],
     "--data-workers must be >= 0"),
    ("images-crop-area", [*TRAIN[:-4], "--dataset", "{t}/imgs", "--min-crop-area", "0", "--out", "{t}/new"],
     "--min-crop-area must be in (0, 1]"),
    ("images-bad-policy", [*TRAIN[:-4], "--dataset", "{t}/imgs", "--bad-images", "ignore", "--out", "{t}/new"],
     "invalid choice"),
    ("data-export-exists", ["data", "export", "fashion-mnist", "{t}/run"], "exists and is not empty"),
    ("data-export-format", ["data", "export", "fashion-mnist", "{t}/new", "--format", "gif"], "invalid choice"),
    ("data-shard-not-a-folder", ["data", "shard", "{t}/run", "--out", "{t}/new", "--images-per-shard", "2"],
     "has no train/ folder"),
    ("data-shard-zero", ["data", "shard", "{t}/imgs", "--out", "{t}/new", "--images-per-shard", "0"],
     "--images-per-shard must be >= 1"),
    ("data-shard-out-exists", ["data", "shard", "{t}/imgs", "--out", "{t}/run", "--images-per-shard", "2"],
     "exists and is not empty"),
    ("data-photos-count", ["data", "photos", "{t}/new", "--classes", "0"], "--classes must be >= 1"),
    ("bench-input-workers", ["bench", "input", "--dataset", "{t}/imgs", "--data-workers", "0", "--out", "{t}/new"],
     "--data-workers must be integers >= 1"),
    ("bench-input-too-few", ["bench", "input", "--dataset", "{t}/imgs", "--out", "{t}/new"],
     "fewer than a batch of 64"),
    ("bench-input-out", ["bench", "input", "--dataset", "{t}/imgs", "--out", "{t}/run"], "already has files"),
    ("dataset-missing-file", [*TRAIN[:-4], "--dataset", "{t}/none.npz", "--out", "{t}/new"], "cannot read"),
    ("dataset-missing-array", [*TRAIN[:-4], "--dataset", "{t}/nolabels.npz", "--out", "{t}/new"],
     "missing array(s) y_test"),
    ("dataset-label-mismatch", [*TRAIN[:-4], "--dataset", "{t}/mismatch.npz", "--out", "{t}/new"],
     "x_train has 8 images but y_train 5 labels"),
    ("dataset-nan", [*TRAIN[:-4], "--dataset", "{t}/nan.npz", "--out", "{t}/new"], "512 pixel value(s) are NaN"),
    ("dataset-layout", [*TRAIN[:-4], "--dataset", "{t}/good.npz", "--layout", "NHWC", "--out", "{t}/new"],
     "is it NCHW? (--layout)"),
    ("device-cuda-without-gpu", [*TRAIN, "--device", "cuda", "--out", "{t}/new"], "local rank 0 has no GPU (0 visible)"),
    ("allreduce-cuda-without-gpu", ["bench", "allreduce", "--device", "cuda", "--sizes", "4KB", "--out", "{t}/new"],
     "local rank 0 has no GPU (0 visible)"),
    ("precision-fp16-on-cpu", [*TRAIN, "--device", "cpu", "--precision", "fp16", "--out", "{t}/new"],
     "--precision fp16 needs a CUDA device"),
    ("precision-unknown", [*TRAIN, "--precision", "fp8", "--out", "{t}/new"], "invalid choice"),
    ("channels-last-keras", [*TRAIN, "--backend", "keras", "--channels-last", "--out", "{t}/new"],
     "--channels-last is a torch option"),
    ("bench-peer-unknown", ["bench", "throughput", "--peers", "jax", "--out", "{t}/new"], "unknown peer(s) jax"),
    ("bench-peer-torch-only", ["bench", "throughput", "--backend", "keras", "--peers", "plain,ddp", "--out", "{t}/new"],
     "--peers ddp: torch loops, for --backend torch only"),
    ("launch-np-zero", [*TRAIN, "--np", "0", "--out", "{t}/new"], "--np must be >= 1, got 0"),
    ("launch-args-unquoted", [*TRAIN, "--np", "2", "--launcher-args", "--verbose", "--out", "{t}/new"],
     "--launcher-args: expected one argument"),
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
    ("bench-model-not-importable", ["bench", "throughput", "--model", "nosuchpkg.models:build", "--out", "{t}/new"],
     "cannot import nosuchpkg.models: ModuleNotFoundError"),
    ("bench-model-wrong-type", ["bench", "throughput", "--model", "tests.helpers.mymodel:wrong_type", "--out",
                                "{t}/new"], "the builder returned dict, not a Module"),
    ("bench-dataset-missing-array", ["bench", "throughput", "--dataset", "{t}/nolabels.npz", "--out", "{t}/new"],
     "missing array(s) y_test"),
    ("bench-dataset-nan", ["bench", "throughput", "--dataset", "{t}/nan.npz", "--out", "{t}/new"],
     "512 pixel value(s) are NaN"),
    ("bench-dataset-too-small", ["bench", "throughput", "--dataset", "{t}/good.npz", "--per-worker-batch", "64",
                                 "--out", "{t}/new"], "fewer than --per-worker-batch 64"),
    ("bench-dataset-and-shape", ["bench", "throughput", "--dataset", "{t}/good.npz", "--input-shape", "1x8x8",
                                 "--out", "{t}/new"], "--dataset sets both itself"),
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
    # TensorFlow's C++ logging prints two lines at import that no log level silences (README).
    lines = [line for line in proc.stderr.splitlines()
             if line.strip() and not line.startswith(("WARNING: All log messages before absl", "I0000 "))]
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


def test_at_least_50_cases():
    assert len(CASES) >= 50
