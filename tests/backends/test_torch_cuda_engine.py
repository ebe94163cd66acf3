"""The torch engine on CUDA: placement, host syncs, AMP, channels-last, accumulation, NaN, peers
(skipped without a CUDA device, with the reason).

Not run on the project's own machines (no GPU); ``scripts/device_check.sh`` runs it on a GPU host,
building Horovod there.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

# The engines here share one module-scoped Horovod in this process (only horovod.torch is initialized).
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
              pytest.mark.horovod_in_process]


@pytest.fixture(scope="module", autouse=True)
def _horovod_down_after_this_module():
    """Horovod stays up for this module's engines, and is shut down before the next module runs."""
    yield
    import horovod.torch as hvd

    if hvd.is_initialized():
        hvd.shutdown()


@pytest.fixture(scope="module")
def engine_for():
    from backends.torch.engine import TorchEngine
    from harness.recipe import Recipe

    def make(precision="fp32", optimizer="lars", *, channels_last=False, model="resnet-small", accumulation_steps=1,
             per_worker_batch=16):
        engine = TorchEngine(threads=1, device="cuda", precision=precision, channels_last=channels_last)
        recipe = Recipe(per_worker_batch=per_worker_batch, dataset_size=16 * 20, epochs=1.0, warmup_epochs=0.2,
                        decay="none", optimizer=optimizer, accumulation_steps=accumulation_steps)
        engine.build(recipe, model=model, input_shape=(1, 28, 28), num_classes=10, seed=0)
        return engine

    return make


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(16, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 16).astype(np.int64))]


def test_model_batches_and_optimizer_state_live_on_the_local_gpu(engine_for):
    engine = engine_for()
    expected = torch.device("cuda", engine.local_rank)
    prepared = engine.prepare(batch())
    assert all(t.device == expected for pair in prepared for t in pair)
    assert prepared.ready is not None  # copied on the engine's own stream; the step waits for this event
    engine.train_step(prepared)
    assert prepared.ready is None
    assert all(p.device == expected for p in engine.model.parameters())
    state = [v for s in engine.optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    assert state and all(v.device == expected for v in state)
    assert engine.device_info()["type"] == "cuda" and torch.cuda.current_device() == engine.local_rank


def test_a_training_step_makes_one_host_sync_the_verdict_before_the_update(engine_for):
    engine = engine_for()
    prepared = engine.prepare(batch())
    engine.train_step(prepared)  # warm-up: allocations, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = engine.train_step(prepared)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]  # the finiteness verdict, read before the update
    assert torch.is_tensor(loss) and loss.device.type == "cuda"  # read out only when logged
    assert engine.device_info()["cudnn_benchmark"] is True and torch.backends.cudnn.benchmark


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_steps_change_the_parameters(engine_for, precision):
    engine = engine_for(precision)
    before = engine.flat_parameters()
    losses = [float(engine.train_step(batch(seed))) for seed in range(5)]
    assert np.isfinite(losses).all()
    assert engine.loss_scale_skips < 5  # at least one fp16 step was applied, not all skipped as overflows
    assert not np.allclose(engine.flat_parameters(), before)
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())  # fp32 master weights


def test_channels_last_trains_with_contiguous_weights(engine_for):
    engine = engine_for("bf16", channels_last=True)
    prepared = engine.prepare(batch())
    assert prepared[0][0].is_contiguous(memory_format=torch.channels_last)
    before = engine.flat_parameters()
    assert np.isfinite(float(engine.train_step(prepared)))
    assert all(p.is_contiguous() for p in engine.model.parameters())  # Horovod's collectives need this
    assert not np.allclose(engine.flat_parameters(), before)


def test_accumulation_over_the_copy_stream_equals_one_large_batch(engine_for):
    """mlp (no BatchNorm): 2 micro-batches of 8 copied on the side stream = 1 batch of 16."""
    x, y = batch()[0]
    two = engine_for(model="mlp", optimizer="sgd", accumulation_steps=2, per_worker_batch=8)
    prepared = two.prepare([(x[:8], y[:8]), (x[8:], y[8:])])
    assert prepared.ready is not None
    two.train_step(prepared)
    one = engine_for(model="mlp", optimizer="sgd")
    one.train_step([(x, y)])
    np.testing.assert_allclose(two.flat_parameters(), one.flat_parameters(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_nan_batch_stops_the_run_on_cuda_before_the_update(tmp_path, precision):
    out = tmp_path / precision
    argv = [sys.executable, "-m", "harness_cli", "train", "--device", "cuda", "--precision", precision, "--model",
            "resnet-small", "--dataset", "synthetic", "--train-size", "256", "--test-size", "32", "--max-steps", "6",
            "--checkpoint-steps", "1", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HARNESS_FAULT": "0:2:nan", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 1, proc.stderr
    assert "non-finite gradient: the step was not applied" in proc.stderr
    meta = json.loads((out / "failure-rank0.json").read_text())
    assert meta["step"] == 2 and not (out / "summary.json").exists()


def test_peers_run_on_cuda_with_fp16_and_channels_last(tmp_path):
    out = tmp_path / "tp"
    argv = [sys.executable, "-m", "harness_cli", "bench", "throughput", "--device", "cuda", "--precision", "fp16",
            "--channels-last", "--model", "resnet-small", "--steps", "6", "--batches-per-iter", "3",
            "--warmup-steps", "2", "--peers", "plain,horovod,ddp", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["peers"]) == ["plain", "horovod", "ddp"] and summary["device"]["type"] == "cuda"
    assert summary["precision"] == "fp16" and summary["channels_last"] is True
    assert all(summary[f"ratio_to_{peer}"] > 0 for peer in summary["peers"])


def test_allreduce_bench_reduces_device_tensors(tmp_path):
    out = tmp_path / "ar"
    argv = [sys.executable, "-m", "harness_cli", "bench", "allreduce", "--sizes", "1MB..16MB", "--factor", "16",
            "--iters", "3", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cuda" and {r["device"] for r in summary["results"]} == {"cuda"}
    assert {r["impl"] for r in summary["results"]} == {"horovod", "torch.distributed-nccl"}


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_two_gpu_ranks_stay_in_sync(tmp_path, launched, precision):
    from harness.runtime.launch import launch_command

    out = tmp_path / precision
    argv = [sys.executable, "-m", "harness_cli", "train", "--device", "cuda", "--precision", precision,
            "--model", "resnet-small", "--dataset", "synthetic", "--max-steps", "6", "--out", str(out)]
    proc = launched(launch_command(argv, launcher="horovodrun", np=2, hosts="localhost:2"))
    assert proc.returncode == 0, proc.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks_in_sync"] and summary["device"]["type"] == "cuda" and summary["precision"] == precision


def test_uint8_images_cross_as_bytes_and_are_normalised_on_the_copy_stream():
    from backends.torch.engine import TorchEngine
    from harness.augment import IMAGENET_MEAN, IMAGENET_STD, normalize
    from harness.recipe import Recipe

    engine = TorchEngine(threads=1, device="cuda", precision="bf16", channels_last=True)
    recipe = Recipe(per_worker_batch=16, dataset_size=16 * 20, epochs=1.0, warmup="none", decay="none")
    engine.build(recipe, model="resnet-small", input_shape=(3, 32, 32), num_classes=10, seed=0,
                 input_normalization=(IMAGENET_MEAN, IMAGENET_STD))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 16)
    prepared = engine.prepare([(x, y)])
    assert prepared.ready is not None  # copy and normalisation queued on the engine's own stream
    images = prepared[0][0]
    assert images.device.type == "cuda" and images.dtype == torch.float32
    assert images.is_contiguous(memory_format=torch.channels_last)
    torch.cuda.synchronize()
    np.testing.assert_allclose(images.cpu().numpy(), normalize(x, IMAGENET_MEAN, IMAGENET_STD), rtol=1e-6, atol=1e-6)
    assert np.isfinite(float(engine.train_step(prepared)))


def test_training_from_an_image_folder_on_cuda_records_the_wait_for_data(tmp_path):
    from tests.runtime.test_images import make_folder

    folder = make_folder(tmp_path / "imgs", per_class=32, val_per_class=4)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "harness_cli", "train", "--device", "cuda", "--precision", "bf16", "--channels-last",
            "--model", "resnet-small", "--dataset", str(folder), "--image-size", "32", "--data-workers", "2",
            "--per-worker-batch", "16", "--epochs", "4", "--max-steps", "12", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"]["type"] == "cuda" and summary["steps"] == 12
    assert summary["input"]["data_workers"] == 2 and summary["input"]["pipeline_images_per_s_per_rank"] > 0
    assert 0 < summary["test_accuracy"] <= 1 and summary["channels_last"] is True
