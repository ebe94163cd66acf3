"""The torch engine on CUDA: placement, host syncs, AMP (skipped without a CUDA device, with the reason).

Not run on the project's own machines (no GPU); run it on a GPU host with Horovod built there.
"""

import json
import sys
import warnings

import numpy as np
import pytest
import torch

# The engines here share one module-scoped Horovod in this process (only horovod.torch is initialized).
pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
              pytest.mark.horovod_in_process]


@pytest.fixture(scope="module")
def engine_for():
    from backends.torch.engine import TorchEngine
    from harness.recipe import Recipe

    def make(precision="fp32", optimizer="lars"):
        engine = TorchEngine(threads=1, device="cuda", precision=precision)
        recipe = Recipe(per_worker_batch=16, dataset_size=16 * 20, epochs=1.0, warmup_epochs=0.2,
                        decay="none", optimizer=optimizer)
        engine.build(recipe, model="resnet-small", input_shape=(1, 28, 28), num_classes=10, seed=0)
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


def test_a_training_step_makes_no_host_sync(engine_for):
    engine = engine_for()
    prepared = engine.prepare(batch())
    engine.train_step(prepared)  # warm-up: allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = engine.train_step(prepared)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert syncs == [], [str(w.message) for w in syncs]  # the non-finite verdict stays on the device
    assert torch.is_tensor(loss) and loss.device.type == "cuda"  # read out only when logged


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_steps_give_finite_losses(engine_for, precision):
    engine = engine_for(precision)
    losses = [float(engine.train_step(batch(seed))) for seed in range(5)]
    assert np.isfinite(losses).all()
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())  # fp32 master weights


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
