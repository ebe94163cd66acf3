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


def _deferred_verdict():
    import numpy as np

    from backends.torch.engine import TorchEngine
    from harness.errors import NonFiniteError
    from harness.recipe import Recipe

    engine = TorchEngine(threads=1, device="cpu")
    assert engine.defer_nonfinite is False  # on a CPU the host read is free: the step is refused at once
    engine.defer_nonfinite = True
    recipe = Recipe(per_worker_batch=8, dataset_size=8 * 10, epochs=1.0, warmup="none", decay="none")
    engine.build(recipe, model="mlp", input_shape=(1, 28, 28), num_classes=10, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8)
    engine.train_step([(x, y)])
    engine.check_pending()  # finite so far: nothing to raise
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    engine.train_step([(bad, y)])  # engine step 2: no raise inside the step
    engine.train_step([(x, y)])
    with pytest.raises(NonFiniteError, match="at engine step 2 "):
        engine.check_pending()
    engine.check_pending()  # read once


def test_the_deferred_nonfinite_verdict_of_the_gpu_path_stops_at_the_read_out():
    """The GPU path's ``stop`` (no host read per step), run here on the CPU by switching it on. The engine
    starts Horovod: in a process of its own."""
    in_own_process(_deferred_verdict)
