"""Device choice per local rank, on this machine's real device lists (no GPU here: the CPU paths)."""

import os
import socket

import pytest
import torch

from backends.keras.device import policy_name, visible_gpus
from backends.torch.device import autocast, check_precision, device_info, resolve_device
from harness.runtime.errors import ConfigError
from tests.conftest import in_own_process

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def test_torch_auto_and_cpu_choose_the_cpu_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: tests/backends/test_torch_cuda.py covers it")
    assert resolve_device("auto", 0) == torch.device("cpu")
    assert resolve_device("cpu", 3) == torch.device("cpu")
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda", 1)
    assert info.value.local and f"host {socket.gethostname()}: local rank 1 has no GPU (0 visible)" in str(info.value)
    assert device_info(torch.device("cpu")) == {"type": "cpu", "name": "cpu", "count_per_node": 1}


def test_torch_precision_rules():
    check_precision("bf16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="must be one of fp32, bf16, fp16"):
        check_precision("fp8", torch.device("cpu"))
    layer = torch.nn.Linear(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert layer(torch.ones(2, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert layer(torch.ones(2, 4)).dtype == torch.float32
    assert layer.weight.dtype == torch.float32  # master weights stay fp32


@pytest.mark.parametrize("gpus, local_rank, requested, expected", [
    ([], 0, "auto", None),          # a CPU-only list: no pinning, no error
    ([], 0, "cpu", []),
    (["gpu0", "gpu1"], 0, "cpu", []),
    (["gpu0", "gpu1"], 1, "auto", ["gpu1"]),
    (["gpu0", "gpu1"], 0, "cuda", ["gpu0"]),
])
def test_keras_sees_only_its_local_gpu(gpus, local_rank, requested, expected):
    assert visible_gpus(gpus, local_rank, requested) == expected


@pytest.mark.parametrize("gpus, local_rank", [([], 0), (["gpu0", "gpu1"], 2)])
def test_keras_rank_without_a_gpu_is_one_host_local_line(gpus, local_rank):
    with pytest.raises(ConfigError) as info:
        visible_gpus(gpus, local_rank, "cuda")
    assert info.value.local and f"local rank {local_rank} has no GPU ({len(gpus)} visible)" in str(info.value)


def test_keras_pinning_against_tensorflows_own_device_list():
    import tensorflow as tf

    from backends.keras.device import pin_local_gpu

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has GPUs: pinning changes TensorFlow's state for the process")
    assert pin_local_gpu(tf, 0, "auto") == {"type": "cpu", "name": "cpu", "count_per_node": 1}
    assert pin_local_gpu(tf, 0, "cpu")["type"] == "cpu"
    assert policy_name("bf16") == "mixed_bfloat16" and policy_name("fp16") == "mixed_float16"


def _nan_is_refused_before_the_update():
    import numpy as np

    from backends.torch.engine import TorchEngine
    from harness.errors import NonFiniteError
    from harness.recipe import Recipe

    engine = TorchEngine(threads=1, device="cpu")
    recipe = Recipe(per_worker_batch=8, dataset_size=8 * 10, epochs=1.0, warmup="none", decay="none")
    engine.build(recipe, model="mlp", input_shape=(1, 28, 28), num_classes=10, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8)
    engine.train_step([(x, y)])
    before = engine.flat_parameters()
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="the step was not applied"):
        engine.train_step([(bad, y)])  # raised inside the step, on every device: no deferred verdict
    assert np.array_equal(engine.flat_parameters(), before) and np.isfinite(before).all()


def test_a_nan_gradient_stops_the_step_before_any_weight_changes():
    """The engine starts Horovod: in a process of its own."""
    in_own_process(_nan_is_refused_before_the_update)


def _fp16_overflow_skips(policy, init_scale, pattern):
    """Run ``pattern`` (True: a NaN batch, False: a finite one) through the engine's fp16 loss-scaling
    path with torch's real ``GradScaler`` on the CPU (fp16 autocast itself needs CUDA; the scaler
    logic is the same). Returns (steps run, skips, error or None, parameters unchanged by NaN steps)."""
    import numpy as np
    import torch

    from backends.torch.engine import TorchEngine
    from harness.errors import NonFiniteError
    from harness.recipe import Recipe

    engine = TorchEngine(threads=1, device="cpu", nonfinite=policy)
    engine.build(Recipe(per_worker_batch=8, dataset_size=8 * 50, epochs=1.0, warmup="none", decay="none"),
                 model="mlp", input_shape=(1, 28, 28), num_classes=10, seed=0)
    engine.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8)
    bad = np.full_like(x, np.nan)
    steps, error, frozen = 0, None, True
    for nan in pattern:
        before = engine.flat_parameters()
        try:
            engine.train_step([(bad if nan else x, y)])
        except NonFiniteError as exc:
            error = str(exc)
            break
        finally:
            steps += 1
        frozen &= not nan or np.array_equal(engine.flat_parameters(), before)
    return steps, engine.loss_scale_skips, error, frozen


@pytest.mark.parametrize("policy, init_scale, pattern, steps, skips, message", [
    # 2^16 halves 16 times: the 16th overflow in a row stops the run (MAX_CONSECUTIVE_LOSS_SCALE_SKIPS).
    ("stop", 2.0 ** 16, [True] * 40, 16, 16, "in 16 consecutive steps (loss scale 2)"),
    # An overflow at scale 1 is a non-finite gradient, not a scale too high (MIN_LOSS_SCALE): 4, 2, 1.
    ("stop", 4.0, [True] * 40, 3, 3, "in 3 consecutive steps (loss scale 1)"),
    # A finite step ends the run of skips: 10 + 10 never reach 16 in a row, and the scale stays high.
    ("stop", 2.0 ** 30, [True] * 10 + [False] + [True] * 10, 21, 20, None),
    # skip counts and goes on.
    ("skip", 4.0, [True] * 20, 20, 20, None),
])
def test_fp16_overflow_skips_are_bounded_under_stop(policy, init_scale, pattern, steps, skips, message):
    ran, skipped, error, frozen = in_own_process(_fp16_overflow_skips, policy, init_scale, pattern)
    assert (ran, skipped) == (steps, skips) and frozen
    if message is None:
        assert error is None
    else:
        assert message in error and "no step was applied" in error


def test_one_visible_gpu_is_the_ranks_whatever_its_local_rank():
    from harness.runtime.devices import local_gpu_index

    assert [local_gpu_index(r, 1) for r in range(4)] == [0, 0, 0, 0]  # CUDA_VISIBLE_DEVICES per rank
    assert [local_gpu_index(r, 8) for r in range(8)] == list(range(8))
    with pytest.raises(ConfigError, match="local rank 2 has no GPU \\(2 visible\\)"):
        local_gpu_index(2, 2)
    assert visible_gpus(["gpu3"], 3, "auto") == ["gpu3"] and visible_gpus(["gpu0"], 1, "cuda") == ["gpu0"]


def test_bf16_is_refused_where_the_gpu_only_emulates_it():
    from backends.keras.device import check_policy_device
    from harness.runtime.devices import check_bf16_native

    check_bf16_native((8, 0), "A100")
    check_bf16_native((9, 0), "H200")
    check_bf16_native(None, "unknown")
    with pytest.raises(ConfigError, match="Tesla V100 \\(compute capability 7.0\\) only emulates bfloat16") as info:
        check_bf16_native((7, 0), "Tesla V100")
    assert info.value.local
    v100 = {"type": "cuda", "name": "Tesla V100", "compute_capability": "7.0"}
    with pytest.raises(ConfigError, match="only emulates"):
        check_policy_device("bf16", v100)
    check_policy_device("fp16", v100)
    check_policy_device("bf16", {"type": "cpu", "name": "cpu"})
