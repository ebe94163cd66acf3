"""Training from images on disk under horovodrun: an image folder and tar shards, torch and Keras, ranks in
sync, data-wait recorded and reported, resume mid-epoch exact, and the README's GPU quick start at small scale."""

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.runtime.launch import launch_command
from tests.conftest import ROOT, run_launched

pytestmark = pytest.mark.parallel
HARNESS = [sys.executable, "-m", "harness_cli"]
SMALL = ["--model", "resnet-small", "--image-size", "28", "--threads", "1", "--data-workers", "1",
         "--per-worker-batch", "16", "--timing-skip", "0", "--epochs", "4"]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """Fashion-MNIST's first 640 train and 200 test images as a PNG folder, and as tar shards of 80."""
    root = tmp_path_factory.mktemp("fashion")
    for args in (["data", "export", "fashion-mnist", str(root / "folder"), "--train-size", "640", "--test-size", "200"],
                 ["data", "shard", str(root / "folder"), "--out", str(root / "shards"), "--images-per-shard", "80"]):
        proc = run_launched([*HARNESS, *args])
        assert proc.returncode == 0, proc.output
    return {"folder": str(root / "folder"), "shards": str(root / "shards" / "train-{000000..000007}.tar")}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backend, layout", [("torch", "folder"), ("keras", "shards"), ("torch", "shards"),
                                             ("keras", "folder")])
def test_two_ranks_train_from_images_in_sync_with_data_wait_recorded(tmp_path, fashion, backend, layout):
    out = tmp_path / "run"
    proc = run_launched(launch_command([*HARNESS, "train", "--backend", backend, "--dataset", fashion[layout], *SMALL,
                                        "--max-steps", "8", "--out", str(out)], launcher="horovodrun", np=2,
                                       hosts="localhost:2"))
    assert proc.returncode == 0, proc.output
    assert re.search(r"\| data wait \d+%", proc.output)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks_in_sync"] and summary["steps"] == 8 and summary["dataset"] == fashion[layout]
    account = summary["input"]
    assert account["data_workers"] == 1 and len(account["data_wait_share_per_rank"]) == 2
    assert 0 <= account["data_wait_share"] < 1 and account["pipeline_images_per_s_per_rank"] > 0
    steps = [r for r in _records(out) if r["kind"] == "step"]
    assert len(steps) == 16 and all(r["data_wait_s"] >= 0 and r["images"] == 16 for r in steps)
    assert 0 < summary["test_accuracy"] <= 1
    report = run_launched([*HARNESS, "report", str(out), "--out", str(tmp_path / "report")])
    assert report.returncode == 0, report.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert "data_wait_share" in text and re.search(r"data wait \d+\.\d% of step time \(slowest rank\)", text)
    assert "decode workers) vs compute" in text


def test_an_exported_png_folder_holds_fashion_mnist_bytes_exactly(fashion):
    """Lossless export + whole-image crops, no flip: the pipeline hands the engine Fashion-MNIST's own pixels."""
    from harness.datasets import FILES, find_fashion_mnist, read_idx
    from harness.runtime.config import DataConfig
    from harness.runtime.data import load_data

    raw = read_idx(find_fashion_mnist() / FILES["test_images"])[:200]
    labels = read_idx(find_fashion_mnist() / FILES["test_labels"])[:200]
    config = DataConfig(source=fashion["folder"], image_size=28, data_workers=0, eval_crop_fraction=1.0)
    source = load_data(config, model="mlp", seed=0)
    x, y = next(source.eval_batches(rank=0, world_size=1))
    # the folder is sorted by class, then by index: the same images as the IDX file, in that order
    order = np.lexsort((np.arange(200), labels))
    np.testing.assert_array_equal(x[..., 0], raw[order])
    np.testing.assert_array_equal(y, labels[order])


def _decoders_of(out: Path) -> list[int]:
    """Live processes whose command line names ``out`` (ranks and their forked decode workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(out) in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                        (proc / "stat").read_text().split()[2] != "Z":
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def test_a_killed_and_resumed_folder_run_ends_with_the_uninterrupted_parameters(tmp_path, fashion):
    args = [*HARNESS, "train", "--dataset", fashion["folder"], *SMALL, "--max-steps", "14", "--checkpoint-steps", "3",
            "--save-params", "--set", "optimizer=lars"]
    where = dict(launcher="horovodrun", np=2, hosts="localhost:2")
    straight = run_launched(launch_command([*args, "--out", str(tmp_path / "a")], **where))
    assert straight.returncode == 0, straight.output
    killed = run_launched(launch_command([*args, "--out", str(tmp_path / "b")], **where), HARNESS_FAULT="0:10:kill")
    assert killed.returncode != 0 and not (tmp_path / "b" / "summary.json").exists()
    deadline = time.monotonic() + 15
    while _decoders_of(tmp_path / "b") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _decoders_of(tmp_path / "b"), "a decode worker outlived its killed rank"
    resumed = run_launched(launch_command([*args, "--resume", "--out", str(tmp_path / "b")], **where))
    assert resumed.returncode == 0, resumed.output
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "params.npy"), np.load(tmp_path / "a" / "params.npy"))
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["resumed_from_step"] == 9 and summary["steps"] == 14 and summary["ranks_in_sync"]
    # 640 images / (2 × 16) = 20 steps per epoch: the checkpoint at step 9 is mid-epoch


def test_a_corrupt_image_stops_the_run_naming_it_or_is_skipped_and_counted(tmp_path):
    from tests.runtime.test_images import make_folder

    folder = make_folder(tmp_path / "imgs", per_class=16, val_per_class=2)
    bad = folder / "train" / "dog" / "5.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    base = [*HARNESS, "train", "--dataset", str(folder), "--model", "mlp", "--image-size", "16", "--threads", "1",
            "--per-worker-batch", "8", "--epochs", "4", "--data-workers", "1"]
    stop = run_launched([*base, "--out", str(tmp_path / "stop")])
    lines = [line for line in stop.stderr.splitlines() if line.startswith("harness:")]
    assert stop.returncode == 1 and len(lines) == 1 and str(bad) in lines[0] and "--bad-images skip" in lines[0], \
        stop.output
    assert "Traceback" not in stop.stderr
    skip = run_launched([*base, "--bad-images", "skip", "--out", str(tmp_path / "skip")])
    assert skip.returncode == 0, skip.output
    account = json.loads((tmp_path / "skip" / "summary.json").read_text())["input"]
    assert account["bad_images_skipped"] == 4 and account["bad_images"] == [str(bad)] * 4  # once per epoch


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## On a GPU cluster\n.*?```sh\n(.*?)```", text, flags=re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_gpu_quick_start_runs_here_at_small_scale(tmp_path):
    """The README's commands, with the cluster made small: 2 CPU ranks, 32×32 crops, a generated folder."""
    from harness.runtime.image_files import make_photo_folder

    commands = [c for c in _quick_start_commands() if c.startswith("harness ")]
    assert [c.split()[1] for c in commands] == ["hostfile", "train", "data", "train", "report"]
    make_photo_folder(tmp_path / "imagenet", classes=4, images_per_class=8, val_per_class=2)
    swaps = {"/data/imagenet": str(tmp_path / "imagenet"), "runs/": f"{tmp_path}/runs/",
             "--images-per-shard 1000": "--images-per-shard 8"}
    small = {"--np": "2", "--hostfile": None, "--device": "cpu"}
    for command in commands:
        for old, new in swaps.items():
            command = command.replace(old, new)
        argv = shlex.split(command)[1:]
        for flag, value in small.items():
            if flag in argv:
                at = argv.index(flag)
                del argv[at:at + 2]
                if value:
                    argv[at:at] = [flag, value]
        if argv[0] == "train":  # --hostfile becomes --hosts
            argv += ["--hosts", "localhost:2", "--image-size", "32", "--per-worker-batch", "2", "--max-steps", "2",
                     "--threads", "1", "--data-workers", "1"]
        proc = subprocess.run([*HARNESS, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env=__import__("tests.conftest", fromlist=["worker_env"]).worker_env())
        assert proc.returncode == 0, (argv, proc.stdout + proc.stderr)
    for run in ("rn50-folder", "rn50-shards"):
        summary = json.loads((tmp_path / "runs" / run / "summary.json").read_text())
        assert summary["model"] == "resnet50" and summary["world_size"] == 2 and summary["ranks_in_sync"]
        assert summary["precision"] == "bf16" and summary["input"]["data_workers"] == 1
    assert (tmp_path / "runs" / "report" / "report.md").exists()
