"""The Keras port equals the numpy core, and Keras and PyTorch train identically (no BN)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from backends.keras import LARS, MomentumSGD, RecipeLR  # noqa: E402
from backends.keras.models import mlp as keras_mlp  # noqa: E402
from backends.keras.schedule import RecipeSchedule  # noqa: E402
from backends.torch import LARS as TorchLARS  # noqa: E402
from backends.torch import MomentumSGD as TorchMomentumSGD  # noqa: E402
from backends.torch import RecipeLR as TorchRecipeLR  # noqa: E402
from backends.torch import param_groups  # noqa: E402
from backends.torch.models import mlp as torch_mlp  # noqa: E402
from harness.lars import lars_step  # noqa: E402
from harness.losses import cross_entropy  # noqa: E402
from harness.recipe import Recipe, mlperf_resnet50_lars  # noqa: E402
from harness.sgd import momentum_correction, sgd_step  # noqa: E402
from tests.conftest import in_own_process  # noqa: E402

SHAPES = [(4, 3), (5, 2), (2, 3, 3), (7,)]  # the 1-D variable is excluded (bias/norm rule)
MASK = [True, True, True, False]
HYPER = dict(momentum=0.9, weight_decay=0.01)
RECIPE = Recipe(reference_lr=0.1, reference_batch=64, world_size=4, per_worker_batch=32, dataset_size=2560,
                epochs=6, warmup="constant", warmup_epochs=1, milestones_epochs=(3, 5), optimizer="lars")


def _setup(seed=42):
    rng = np.random.default_rng(seed)
    w = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    w[1][:] = 0  # zero weights: trust ratio 1
    return rng, w, [keras.Variable(x) for x in w]


def _run(optimizer, variables, rng, steps):
    grads = []
    for step in range(steps):
        g = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
        if step == 1:
            g[0][:] = 0
        optimizer.apply([keras.ops.convert_to_tensor(x) for x in g], variables)
        grads.append(g)
    return grads


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("trust_clip", [False, True])
def test_keras_lars_equals_numpy_reference(nesterov, trust_clip):
    rng, w, variables = _setup()
    opt = LARS(0.5, trust_coefficient=0.02, eps=1e-9, nesterov=nesterov, trust_clip=trust_clip, **HYPER)
    grads = _run(opt, variables, rng, 5)
    ref_w, ref_v = [x.astype(np.float64) for x in w], [np.zeros(s) for s in SHAPES]
    for g in grads:
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=0.5, trust_coefficient=0.02, eps=1e-9, nesterov=nesterov,
                                 trust_clip=trust_clip, adapt_mask=MASK, decay_mask=MASK, **HYPER)
    for v, ref in zip(variables, ref_w):
        np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nesterov", [False, True])
def test_keras_momentum_sgd_equals_numpy_u_form(nesterov):
    rng, w, variables = _setup()
    grads = _run(MomentumSGD(0.3, nesterov=nesterov, **HYPER), variables, rng, 5)
    ref_w, ref_u = [x.astype(np.float64) for x in w], [np.zeros(s) for s in SHAPES]
    for g in grads:
        ref_w, ref_u = sgd_step(ref_w, g, ref_u, lr=0.3, nesterov=nesterov, decay_mask=MASK, **HYPER)
    for v, ref in zip(variables, ref_w):
        np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-5, atol=1e-5)


def test_recipe_lr_equals_the_core_and_round_trips():
    schedule = RecipeLR(RECIPE)
    steps = np.arange(RECIPE.total_steps + 3)
    got = np.array([float(schedule(int(s))) for s in steps])
    np.testing.assert_allclose(got, RECIPE.lr(np.minimum(steps, RECIPE.total_steps)), rtol=1e-7)
    np.testing.assert_allclose(got, RECIPE.peak_lr * RECIPE.multiplier(np.minimum(steps, RECIPE.total_steps)),
                               rtol=1e-7)
    again = RecipeLR.from_config(schedule.get_config())
    assert again.recipe == RECIPE
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(LARS(schedule, trust_clip=True)),
                                            custom_objects={"LARS": LARS, "RecipeLR": RecipeLR})
    assert isinstance(restored, LARS) and restored.trust_clip and restored.get_config() == LARS(schedule, trust_clip=True).get_config()


def test_recipe_schedule_is_a_deprecated_alias_of_recipe_lr():
    with pytest.warns(DeprecationWarning, match="RecipeLR"):
        old = RecipeSchedule(RECIPE)
    assert isinstance(old, RecipeLR) and float(old(5)) == float(RecipeLR(RECIPE)(5))


def test_keras_lars_momentum_correction_equals_the_core():
    rng, w, variables = _setup(3)
    opt = LARS(RecipeLR(RECIPE), momentum_correction=True, **HYPER)
    steps = RECIPE.steps_per_epoch * 4
    grads = _run(opt, variables, rng, steps)
    ref_w, ref_v, lr_prev = [x.astype(np.float64) for x in w], [np.zeros(s) for s in SHAPES], RECIPE.lr(0)
    for step, g in enumerate(grads):
        lr = RECIPE.lr(step)
        ref_v = momentum_correction(ref_v, lr_prev=lr_prev, lr_next=lr)
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=lr, adapt_mask=MASK, decay_mask=MASK, **HYPER)
        lr_prev = lr
    for v, ref in zip(variables, ref_w):
        np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-4, atol=1e-5)


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match="trust_coefficient"):
        LARS(0.1, trust_coefficient=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        MomentumSGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="v-form"):
        MomentumSGD(0.1, momentum_correction=True)
    with pytest.raises(ValueError, match="exclude"):
        LARS(0.1, exclude=3)


def test_exclude_none_adapts_and_decays_every_variable_and_a_rule_sees_paths():
    rng, w, variables = _setup()
    grads = _run(LARS(0.5, trust_coefficient=0.02, exclude=None, **HYPER), variables, rng, 3)
    ref_w, ref_v = [x.astype(np.float64) for x in w], [np.zeros(s) for s in SHAPES]
    for g in grads:
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=0.5, trust_coefficient=0.02, **HYPER)
    for v, ref in zip(variables, ref_w):
        np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-5, atol=1e-5)
    seen = []
    opt = MomentumSGD(0.1, exclude=lambda path, shape: seen.append((path, shape)) or False)
    model = keras_mlp((28, 28, 1), 10)
    opt.apply([keras.ops.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
    assert [path for path, _ in seen] == [v.path for v in model.trainable_variables]
    assert [shape for _, shape in seen] == [tuple(v.shape) for v in model.trainable_variables]


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_keras_and_torch_give_the_same_loss_trajectory(optimizer):
    recipe = RECIPE.replace(optimizer=optimizer, weight_decay=5e-4, trust_coefficient=0.02)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 32, 1, 28, 28)).astype(np.float32)
    y = np.argmax(x.reshape(20, 32, -1) @ rng.normal(size=(784, 10)), axis=-1)  # learnable labels
    torch.manual_seed(0)
    tmodel = torch_mlp((1, 28, 28), 10)
    kmodel = keras_mlp((28, 28, 1), 10)
    for layer, linear in zip(("hidden", "out"), (tmodel[1], tmodel[3])):
        kmodel.get_layer(layer).set_weights([linear.weight.detach().numpy().T, linear.bias.detach().numpy()])
    groups = param_groups(tmodel, weight_decay=recipe.weight_decay)
    if optimizer == "lars":
        topt = TorchLARS(groups, recipe.peak_lr, momentum=0.9, trust_coefficient=0.02, momentum_correction=True)
        kopt = LARS(RecipeLR(recipe), momentum=0.9, weight_decay=5e-4, trust_coefficient=0.02,
                    momentum_correction=True)
    else:
        topt = TorchMomentumSGD(groups, recipe.peak_lr, momentum=0.9)
        kopt = MomentumSGD(RecipeLR(recipe), momentum=0.9, weight_decay=5e-4)
    sched = TorchRecipeLR(topt, recipe)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    torch_losses, keras_losses = [], []
    for xb, yb in zip(x, y):
        loss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(xb)), torch.from_numpy(yb))
        topt.zero_grad()
        loss.backward()
        topt.step()
        sched.step()
        torch_losses.append(float(loss.detach()))
        import tensorflow as tf

        with tf.GradientTape() as tape:
            kloss = loss_fn(yb, kmodel(np.transpose(xb, (0, 2, 3, 1)), training=True))
        kopt.apply(tape.gradient(kloss, kmodel.trainable_variables), kmodel.trainable_variables)
        keras_losses.append(float(kloss))
    np.testing.assert_allclose(keras_losses, torch_losses, rtol=1e-4)
    assert torch_losses[-1] < torch_losses[0]


def test_keras_models():
    from backends.keras.models import build_model

    resnet50 = build_model("resnet50", input_shape=(224, 224, 3), num_classes=1000)
    # v1.5 with zero-γ, as torch's: 25,557,032 trainable (torch's count) + 53,120 BN moving statistics.
    assert sum(int(np.prod(v.shape)) for v in resnet50.trainable_variables) == 25_557_032
    assert resnet50.count_params() == 25_610_152
    small = build_model("resnet-small")
    assert [layer.name for layer in small.layers if layer.name.endswith("bn_last")] == \
        ["stage1_bn_last", "stage2_bn_last", "stage3_bn_last"]
    assert all(float(np.abs(np.asarray(small.get_layer(n).gamma)).sum()) == 0.0
               for n in ("stage1_bn_last", "stage2_bn_last", "stage3_bn_last"))
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("vgg16")


XLA_FIT = """
import numpy as np, keras
import horovod.tensorflow as hvd
from backends.keras import DistributedOptimizer, MomentumSGD
hvd.init()
assert hvd.size() == 1
for jit in (True, False):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=DistributedOptimizer(MomentumSGD(0.1)), loss="mse", jit_compile=jit)
    try:
        model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=1, verbose=0)
        print(f"jit_compile={jit}: trained")
    except RuntimeError as exc:
        print(f"jit_compile={jit}: RuntimeError: {exc}")
"""


def test_distributed_optimizer_refuses_xla_with_one_clear_line_even_on_one_rank(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "xla_fit.py"
    script.write_text(XLA_FIT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "jit_compile=True: RuntimeError: Horovod allreduce cannot run under XLA (jit_compile=True): compile the "
        "model with jit_compile=False",
        "jit_compile=False: trained"]


MLPERF = mlperf_resnet50_lars().replace(world_size=1, per_worker_batch=64, dataset_size=64 * 30, epochs=4.0,
                                        warmup_epochs=1.0)  # 30 steps per epoch: warmup from 0, then poly(2) + 1


def test_keras_lars_with_the_mlperf_preset_equals_the_core():
    r = MLPERF
    rng, w, variables = _setup(5)
    schedule = RecipeLR(r)
    np.testing.assert_allclose([float(schedule(s)) for s in range(r.total_steps)], r.lr(np.arange(r.total_steps)),
                               rtol=1e-6)
    opt = LARS(schedule, momentum=r.momentum, weight_decay=r.weight_decay, trust_coefficient=r.trust_coefficient,
               eps=r.lars_eps, momentum_correction=r.momentum_correction)
    grads = _run(opt, variables, rng, r.total_steps)
    ref_w, ref_v = [x.astype(np.float64) for x in w], [np.zeros(s) for s in SHAPES]
    for step, g in enumerate(grads):
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=r.lr(step), momentum=0.9, weight_decay=2e-4,
                                 trust_coefficient=0.001, eps=1e-7, adapt_mask=MASK, decay_mask=MASK)
    for v, ref in zip(variables, ref_w):
        np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-4, atol=1e-5)


def _keras_label_smoothing():
    from backends.keras.engine import KerasEngine, to_channels_last

    engine = KerasEngine(device="cpu")
    recipe = Recipe(per_worker_batch=16, dataset_size=64, epochs=1.0, warmup="none", decay="none",
                    label_smoothing=0.1)
    engine.build(recipe, model="mlp", input_shape=(1, 28, 28), num_classes=10, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 16)
    logits = np.asarray(engine.model(to_channels_last(x), training=False), dtype=np.float64)
    loss = engine.train_step([(x, y)])
    assert loss == pytest.approx(cross_entropy(logits, y, label_smoothing=0.1), rel=1e-5)
    assert loss != pytest.approx(cross_entropy(logits, y), rel=1e-3)
    after = np.asarray(engine.model(to_channels_last(x), training=False), dtype=np.float64)
    summed, _, count = engine.evaluate(x, y)
    assert summed / count == pytest.approx(cross_entropy(after, y), rel=1e-5)


def test_keras_engine_trains_on_the_label_smoothed_loss_and_evaluates_plain_cross_entropy():
    """The engine starts Horovod: in a process of its own."""
    in_own_process(_keras_label_smoothing)
