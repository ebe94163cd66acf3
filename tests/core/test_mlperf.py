"""The numpy core reproduces the MLPerf ResNet-50 reference's LARS, LR schedule and loss.

Each ``_reference_*`` function below is an independent transcription of mlcommons/training
``image_classification/tensorflow2`` (TF ops replaced by numpy, nothing taken from ``harness``):
``lars_optimizer.py`` (``compute_lr``, ``_resource_apply_dense``), ``lars_util.py``
(``PolynomialDecayWithWarmup``, TF's ``PolynomialDecay``) and ``resnet_runnable.py`` (Keras's
``categorical_crossentropy`` with ``label_smoothing``). The core must equal them on random inputs
in float64 to 1e-10.
"""

import argparse
import math

import numpy as np
import pytest

from harness.lars import KERAS_EPSILON, lars_step, reference_epsilon
from harness.losses import cross_entropy, smoothed_targets
from harness.recipe import PRESETS, mlperf_resnet50_lars
from harness.scaling import mlperf_lars_lr
from harness.sgd import momentum_correction

SKIP_LIST = ["batch_normalization", "bias", "bn"]  # common.py, get_optimizer


class _ReferenceLARS:
    """lars_optimizer.py's LARSOptimizer on named numpy variables (momentum slot ``mom`` from zero)."""

    def __init__(self, momentum=0.9, weight_decay=0.0001, eeta=0.001, epsilon=0.0, skip_list=None,
                 use_nesterov=False):
        self.momentum, self.weight_decay, self.eeta = momentum, weight_decay, eeta
        self.epsilon = epsilon or 1e-07  # backend_config.epsilon()
        self.skip_list, self.use_nesterov, self.mom = skip_list, use_nesterov, {}

    def compute_lr(self, grad, var, name, learning_rate):
        scaled_lr = learning_rate
        if self.skip_list is None or not any(v in name for v in self.skip_list):
            w_norm, g_norm = np.linalg.norm(var.ravel(), 2), np.linalg.norm(grad.ravel(), 2)
            trust_ratio = np.where(w_norm > 0, np.where(
                g_norm > 0, self.eeta * w_norm / (g_norm + self.weight_decay * w_norm + self.epsilon), 1.0), 1.0)
            scaled_lr = learning_rate * trust_ratio
            grad = grad + self.weight_decay * var
        return scaled_lr, grad

    def apply(self, grads, variables, learning_rate):
        new = {}
        for name, var in variables.items():
            scaled_lr, grad = self.compute_lr(grads[name], var, name, learning_rate)
            mom = self.mom.get(name, np.zeros_like(var))
            mom_t = mom * self.momentum - grad * scaled_lr
            self.mom[name] = mom_t
            new[name] = var + mom_t * self.momentum - grad * scaled_lr if self.use_nesterov else var + mom_t
        return new


def _reference_lr(step, *, batch_size, steps_per_epoch, train_steps, initial_learning_rate=None,
                  end_learning_rate=None, warmup_epochs=None):
    """lars_util.py's PolynomialDecayWithWarmup(step), with TF's PolynomialDecay(power=2.0)."""
    if batch_size < 16384:
        init, warmup_epochs_ = 10.0, 5
    elif batch_size < 32768:
        init, warmup_epochs_ = 25.0, 5
    else:
        init, warmup_epochs_ = 31.2, 25
    init = initial_learning_rate or init
    end = end_learning_rate or 0.0001
    warmup_epochs_ = warmup_epochs_ if warmup_epochs is None else warmup_epochs
    warmup_steps = float(warmup_epochs_ * steps_per_epoch)
    decay_steps = train_steps - warmup_steps + 1
    if step <= warmup_steps:
        return init * step / warmup_steps
    poly_step = min(step - warmup_steps, decay_steps)
    return (init - end) * (1 - poly_step / decay_steps) ** 2.0 + end


def _reference_loss(labels, logits, label_smoothing, num_classes):
    """resnet_runnable.py: sum(categorical_crossentropy(one_hot, softmax, label_smoothing)) / batch."""
    one_hot = np.eye(num_classes)[labels]
    smoothed = one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return np.sum(-np.sum(smoothed * np.log(probs), axis=1)) * (1.0 / len(labels))


# A ResNet-like set of variables: the names decide the reference's skip list; zero BN beta and a
# zero-initialised conv (norm 0: trust ratio 1) exercise the guards.
NAMES_SHAPES = [("conv2d/kernel", (3, 3, 4, 8)), ("batch_normalization/gamma", (8,)),
                ("batch_normalization/beta", (8,)), ("conv2d_1/kernel", (1, 1, 8, 8)), ("dense/kernel", (8, 10)),
                ("dense/bias", (10,))]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("epsilon", [0.0, 1e-5])
def test_core_lars_equals_the_reference_update_on_random_inputs(nesterov, epsilon):
    rng = np.random.default_rng(2024)
    variables = {n: rng.normal(size=s) for n, s in NAMES_SHAPES}
    variables["batch_normalization/beta"][:] = 0.0
    variables["conv2d_1/kernel"][:] = 0.0
    reference = _ReferenceLARS(momentum=0.9, weight_decay=2e-4, eeta=0.001, epsilon=epsilon, skip_list=SKIP_LIST,
                               use_nesterov=nesterov)
    names = [n for n, _ in NAMES_SHAPES]
    adapt = [not any(s in n for s in SKIP_LIST) for n in names]
    assert adapt == [len(s) > 1 for _, s in NAMES_SHAPES]  # the skip list is the ndim <= 1 rule here
    core_w, core_v = [variables[n].copy() for n in names], [np.zeros(s) for _, s in NAMES_SHAPES]
    for step in range(6):
        lr = float(rng.uniform(0.1, 10.0))
        grads = {n: rng.normal(size=s) * 10.0 ** rng.uniform(-3, 1) for n, s in NAMES_SHAPES}
        if step == 2:
            grads["conv2d/kernel"][:] = 0.0  # a zero gradient: trust ratio 1
        variables = reference.apply(grads, variables, lr)
        core_w, core_v = lars_step(core_w, [grads[n] for n in names], core_v, lr=lr, momentum=0.9,
                                   weight_decay=2e-4, trust_coefficient=0.001, eps=reference_epsilon(epsilon),
                                   nesterov=nesterov, adapt_mask=adapt, decay_mask=adapt)
        for name, w, v in zip(names, core_w, core_v):
            np.testing.assert_allclose(w, variables[name], rtol=1e-10, atol=1e-12, err_msg=name)
            np.testing.assert_allclose(-v, reference.mom[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_epsilon_zero_falls_back_to_keras_epsilon_and_that_changes_the_update():
    assert reference_epsilon(0.0) == KERAS_EPSILON == 1e-7 and reference_epsilon(1e-5) == 1e-5
    w, g = [np.array([1e-3, 0.0])], [np.array([1e-6, 0.0])]  # ||g|| = 1e-6: ε = 1e-7 is 10% of it
    with_fallback, _ = lars_step(w, g, [np.zeros(2)], lr=1.0, momentum=0.0, eps=reference_epsilon(0.0))
    without, _ = lars_step(w, g, [np.zeros(2)], lr=1.0, momentum=0.0, eps=0.0)
    reference = _ReferenceLARS(momentum=0.0, weight_decay=0.0, epsilon=0.0).apply({"k": g[0]}, {"k": w[0]}, 1.0)
    np.testing.assert_allclose(with_fallback[0], reference["k"], rtol=1e-12)
    assert not np.allclose(without[0], reference["k"], rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="eps"):
        reference_epsilon(-1.0)


@pytest.mark.parametrize("global_batch", [3264, 4096, 16384, 32768, 65536])
def test_preset_lr_equals_the_reference_schedule_at_every_step(global_batch):
    recipe = mlperf_resnet50_lars(global_batch)
    spe = 1_281_167 // global_batch  # common.py get_num_train_iterations, drop_train_remainder
    steps = np.arange(0, recipe.total_steps + 5)
    expected = [_reference_lr(int(s), batch_size=global_batch, steps_per_epoch=spe, train_steps=spe * 42)
                for s in steps]
    np.testing.assert_allclose(recipe.lr(steps), expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("seed", range(5))
def test_scaled_recipe_lr_equals_the_reference_with_random_overrides(seed):
    # The reference's flags override the table: --base_learning_rate, --end_learning_rate, --warmup_epochs.
    rng = np.random.default_rng(seed)
    batch = int(rng.choice([256, 512, 1024, 2048]))
    epochs, warmup = int(rng.integers(8, 40)), int(rng.integers(1, 6))
    init, end = float(rng.uniform(0.5, 20)), float(rng.uniform(1e-5, 1e-2))
    recipe = mlperf_resnet50_lars().replace(world_size=1, per_worker_batch=batch, dataset_size=60_000,
                                            epochs=float(epochs), reference_lr=init, warmup_epochs=float(warmup),
                                            end_lr=end)
    spe = 60_000 // batch
    steps = np.arange(recipe.total_steps + 3)
    expected = [_reference_lr(int(s), batch_size=batch, steps_per_epoch=spe, train_steps=spe * epochs,
                              initial_learning_rate=init, end_learning_rate=end, warmup_epochs=warmup)
                for s in steps]
    np.testing.assert_allclose(recipe.lr(steps), expected, rtol=1e-10, atol=1e-15)
    assert recipe.decay_steps == spe * (epochs - warmup) + 1 and recipe.lr(recipe.total_steps - 1) > end


def test_table_rows_and_their_boundaries():
    assert [mlperf_lars_lr(b) for b in (1, 4096, 16383)] == [(10.0, 5.0)] * 3
    assert [mlperf_lars_lr(b) for b in (16384, 32767)] == [(25.0, 5.0)] * 2
    assert [mlperf_lars_lr(b) for b in (32768, 57344)] == [(31.2, 25.0)] * 2
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="global_batch"):
            mlperf_lars_lr(bad)


def test_preset_values_as_cited():
    r = mlperf_resnet50_lars()
    assert PRESETS["mlperf-resnet50-lars"] is mlperf_resnet50_lars
    assert (r.global_batch, r.world_size, r.per_worker_batch, r.dataset_size) == (4096, 64, 64, 1_281_167)
    assert (r.peak_lr, r.warmup_epochs, r.warmup, r.warmup_start_lr, r.scaling_rule) == (10.0, 5.0, "gradual", 0.0,
                                                                                          "none")
    assert (r.decay, r.poly_power, r.end_lr, r.decay_steps_offset) == ("poly", 2.0, 1e-4, 1)
    assert (r.optimizer, r.trust_coefficient, r.lars_eps, r.momentum, r.weight_decay) == ("lars", 0.001, 1e-7, 0.9,
                                                                                          2e-4)
    assert (r.nesterov, r.trust_clip, r.momentum_correction, r.label_smoothing, r.epochs) == (False, False, False,
                                                                                             0.1, 42.0)
    assert (r.steps_per_epoch, r.warmup_steps, r.total_steps, r.decay_steps) == (312, 1560, 13104, 13104 - 1560 + 1)
    big = mlperf_resnet50_lars(65536, per_worker_batch=256)
    assert (big.peak_lr, big.warmup_epochs, big.world_size) == (31.2, 25.0, 256)
    with pytest.raises(ValueError, match="multiple of 64"):
        mlperf_resnet50_lars(1000)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
def test_loss_equals_the_reference_label_smoothed_cross_entropy(label_smoothing):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(64, 10)) * 4
    labels = rng.integers(0, 10, size=64)
    assert cross_entropy(logits, labels, label_smoothing=label_smoothing) == pytest.approx(
        _reference_loss(labels, logits, label_smoothing, 10), rel=1e-12)


def test_label_smoothing_by_hand():
    # Two classes, equal logits: log softmax = log 1/2 for both, whatever q is.
    assert cross_entropy(np.zeros((1, 2)), np.array([0]), label_smoothing=0.1) == pytest.approx(math.log(2))
    # logits (0, ln 3): softmax (1/4, 3/4); label 1, eps 0.2, q = (0.1, 0.9): 0.1 ln 4 + 0.9 ln(4/3).
    got = cross_entropy(np.array([[0.0, math.log(3)]]), np.array([1]), label_smoothing=0.2)
    assert got == pytest.approx(0.1 * math.log(4) + 0.9 * math.log(4 / 3), rel=1e-14)
    np.testing.assert_allclose(smoothed_targets(np.array([2, 0]), 4, 0.2), [[0.05, 0.05, 0.85, 0.05],
                                                                           [0.85, 0.05, 0.05, 0.05]])
    for kwargs, match in ((dict(label_smoothing=1.0), "label_smoothing"), (dict(label_smoothing=-0.1), "label")):
        with pytest.raises(ValueError, match=match):
            cross_entropy(np.zeros((1, 3)), np.array([0]), **kwargs)
    with pytest.raises(ValueError, match="labels"):
        cross_entropy(np.zeros((1, 3)), np.array([3]))


def test_nvidia_variant_is_the_preset_with_momentum_correction():
    # Momentum correction on: the velocity is rescaled by lr_t / lr_{t-1} before each step (Goyal eq. 10);
    # the reference (off) and the corrected run differ as soon as the LR changes.
    recipe = mlperf_resnet50_lars().replace(world_size=1, per_worker_batch=1024, dataset_size=60_000, epochs=3.0,
                                            warmup_epochs=1.0)
    rng = np.random.default_rng(0)
    w0 = [rng.normal(size=(4, 3))]
    grads = [[rng.normal(size=(4, 3))] for _ in range(recipe.total_steps)]
    off, on = (list(w0), [np.zeros((4, 3))]), (list(w0), [np.zeros((4, 3))])
    reference = _ReferenceLARS(momentum=0.9, weight_decay=2e-4, epsilon=0.0)
    ref_vars = {"k": w0[0]}
    for step, g in enumerate(grads):
        lr = recipe.lr(step)
        kwargs = dict(lr=lr, momentum=0.9, weight_decay=2e-4, trust_coefficient=0.001, eps=recipe.lars_eps)
        off = lars_step(*off[:1], g, off[1], **kwargs)
        corrected = momentum_correction(on[1], lr_prev=recipe.lr(max(step - 1, 0)), lr_next=lr)
        on = lars_step(on[0], g, corrected, **kwargs)
        ref_vars = reference.apply({"k": g[0]}, ref_vars, lr)
    np.testing.assert_allclose(off[0][0], ref_vars["k"], rtol=1e-10, atol=1e-12)
    assert not np.allclose(on[0][0], ref_vars["k"], rtol=1e-6, atol=0)


def test_the_preset_flag_resolves_for_a_launch_and_keeps_the_cited_values():
    from harness.runtime.config import RecipeSpec
    from harness_cli.train import add_train_arguments, recipe_spec

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--preset", "mlperf-resnet50-lars", "--out", "x", "--per-worker-batch", "256",
                              "--set", "warmup_epochs=1"])
    recipe = recipe_spec(args).resolve(world_size=2, dataset_size=60_000)
    assert isinstance(recipe_spec(args), RecipeSpec)
    assert (recipe.global_batch, recipe.steps_per_epoch, recipe.warmup_steps) == (512, 117, 117)
    assert (recipe.peak_lr, recipe.label_smoothing, recipe.lars_eps, recipe.decay_steps_offset) == (10.0, 0.1, 1e-7, 1)
    assert recipe.decay_steps == 42 * 117 - 117 + 1
