"""The torch port equals the numpy core: LARS (both paths), MomentumSGD, RecipeLR, momentum correction."""

import numpy as np
import pytest
import torch

from backends.torch import LARS, MomentumSGD, RecipeLR, bias_and_norm, param_groups, zero_gamma_init
from backends.torch.models import build_model
from harness.lars import lars_step
from harness.losses import cross_entropy
from harness.recipe import Recipe, mlperf_resnet50_lars
from harness.sgd import momentum_correction, sgd_step
from tests.conftest import in_own_process

SHAPES = [(4, 3), (5,), (2, 3, 3), (7,)]
# Layer 1 starts at zero weights (trust ratio 1); layers 2-3 form an excluded group.
ADAPT, DECAY = [True, True, False, False], [True, True, False, False]
HYPER = dict(momentum=0.9, weight_decay=0.01, trust_coefficient=0.02, eps=1e-9)


def _initial(dtype):
    rng = np.random.default_rng(42)
    w = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    w[1][:] = 0
    return w


def _torch_params(w):
    return [torch.tensor(x, requires_grad=True) for x in w]


def _lars(params, foreach, **kw):
    groups = [{"params": params[:2]}, {"params": params[2:], "lars_adapt": False, "weight_decay": 0.0}]
    return LARS(groups, lr=kw.pop("lr", 0.5), foreach=foreach, **{**HYPER, **kw})


def _grads(rng, dtype, step):
    g = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    if step == 1:
        g[0][:] = 0  # a zero gradient: trust ratio 1, no NaN
    return g


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("trust_clip", [False, True])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_lars_equals_numpy_reference(foreach, nesterov, trust_clip, dtype, tol):
    rng = np.random.default_rng(7)
    ref_w = _initial(dtype)
    ref_v = [np.zeros_like(x) for x in ref_w]
    params = _torch_params(ref_w)
    opt = _lars(params, foreach, nesterov=nesterov, trust_clip=trust_clip)
    for step in range(5):
        g = _grads(rng, dtype, step)
        for p, gg in zip(params, g):
            p.grad = torch.tensor(gg)
        opt.step()
        ref_w, ref_v = lars_step([x.astype(np.float64) for x in ref_w], [x.astype(np.float64) for x in g], ref_v,
                                 lr=0.5, nesterov=nesterov, trust_clip=trust_clip, adapt_mask=ADAPT,
                                 decay_mask=DECAY, **HYPER)
    for p, ref in zip(params, ref_w):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=tol, atol=tol)


def test_foreach_and_single_tensor_paths_agree_exactly_in_float64():
    rng = np.random.default_rng(3)
    a, b = _torch_params(_initial(np.float64)), _torch_params(_initial(np.float64))
    opt_a, opt_b = _lars(a, False, nesterov=True), _lars(b, True, nesterov=True)
    for step in range(4):
        for pa, pb, g in zip(a, b, _grads(rng, np.float64, step)):
            pa.grad, pb.grad = torch.tensor(g), torch.tensor(g)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-14, atol=1e-15)


def test_default_picks_single_tensor_on_cpu_as_torch_optim_does(monkeypatch):
    import backends.torch.optim as optim

    taken = []
    for path in ("_lars_single_tensor", "_lars_foreach"):
        real = getattr(optim, path)
        monkeypatch.setattr(optim, path,
                            lambda *a, _real=real, _path=path, **kw: taken.append(_path) or _real(*a, **kw))
    params = _torch_params(_initial(np.float32))
    opt = LARS(params, lr=0.1)
    assert opt.defaults["foreach"] is None and all(group["foreach"] is None for group in opt.param_groups)
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    assert sgd.defaults["foreach"] is None  # torch's own default, which LARS follows
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert taken == ["_lars_single_tensor"]
    _lars(params, True).step()
    assert taken == ["_lars_single_tensor", "_lars_foreach", "_lars_foreach"]  # explicit True: two groups


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(5)
    grads = [_grads(rng, np.float64, s) for s in range(6)]

    def run(params, opt, steps):
        for g in steps:
            for p, gg in zip(params, g):
                p.grad = torch.tensor(gg)
            opt.step()

    straight = _torch_params(_initial(np.float64))
    run(straight, _lars(straight, True), grads)
    first = _torch_params(_initial(np.float64))
    opt = _lars(first, True)
    run(first, opt, grads[:3])
    resumed = [torch.tensor(p.detach().numpy(), requires_grad=True) for p in first]
    opt2 = _lars(resumed, True)
    opt2.load_state_dict(opt.state_dict())
    run(resumed, opt2, grads[3:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_invalid_hyperparameters_raise():
    with pytest.raises(ValueError, match="trust_coefficient"):
        LARS([torch.zeros(1, requires_grad=True)], lr=0.1, trust_coefficient=0.0)
    with pytest.raises(ValueError, match="momentum"):
        LARS([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=1.5)


RECIPE = Recipe(reference_lr=0.1, reference_batch=64, world_size=4, per_worker_batch=32, dataset_size=2560,
                epochs=6, warmup="constant", warmup_epochs=1, milestones_epochs=(3, 5), optimizer="lars")


def _one_param_sgd(lr):
    return MomentumSGD([torch.zeros(1, requires_grad=True)], lr)


def test_recipe_lr_multiplies_the_base_lr_by_the_closed_form_and_resumes_from_its_step():
    opt = _one_param_sgd(RECIPE.peak_lr)  # base LR = the recipe's peak: the LR is recipe.lr(step)
    sched = RecipeLR(opt, RECIPE)
    seen = []
    for _ in range(RECIPE.total_steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(seen, RECIPE.lr(np.arange(RECIPE.total_steps)), rtol=1e-15)
    fresh = _one_param_sgd(RECIPE.peak_lr)
    resumed = RecipeLR(fresh, RECIPE)
    resumed.load_state_dict({"last_epoch": 17})
    assert fresh.param_groups[0]["lr"] == pytest.approx(RECIPE.lr(17), rel=1e-15)
    assert resumed.state_dict() == {"last_epoch": 17}


def test_recipe_lr_keeps_the_ratio_of_two_groups_base_lrs_along_the_whole_schedule():
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1},
              {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.01}]
    opt = MomentumSGD(groups, 0.1)
    sched = RecipeLR(opt, RECIPE)
    seen = []
    for _ in range(RECIPE.total_steps):
        seen.append([group["lr"] for group in opt.param_groups])
        opt.step()
        sched.step()
    seen = np.array(seen)
    multiplier = RECIPE.multiplier(np.arange(RECIPE.total_steps))
    np.testing.assert_allclose(seen, np.outer(multiplier, [0.1, 0.01]), rtol=1e-15)
    np.testing.assert_allclose(seen[:, 0] / seen[:, 1], 10.0, rtol=1e-14)
    assert len(np.unique(seen[:, 0])) > 2  # the schedule did change: warmup, jump and drops


def test_recipe_lr_takes_a_callable_multiplier_and_refuses_anything_else():
    opt = _one_param_sgd(0.5)
    sched = RecipeLR(opt, lambda step: 1.0 / (1 + step))
    for _ in range(3):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.5 / 4
    with pytest.raises(ValueError, match="Recipe or a callable"):
        RecipeLR(_one_param_sgd(0.5), 0.1)


@pytest.mark.parametrize("foreach", [False, True])
def test_lars_momentum_correction_equals_the_numpy_core(foreach):
    rng = np.random.default_rng(11)
    w = _initial(np.float64)
    params = _torch_params(w)
    opt = _lars(params, foreach, lr=RECIPE.peak_lr, momentum_correction=True)
    sched = RecipeLR(opt, RECIPE)
    ref_w, ref_v, lr_prev = w, [np.zeros_like(x) for x in w], RECIPE.lr(0)
    for step in range(RECIPE.steps_per_epoch * 4):  # crosses the constant-warmup jump and one drop
        g = _grads(rng, np.float64, step)
        lr = RECIPE.lr(step)
        ref_v = momentum_correction(ref_v, lr_prev=lr_prev, lr_next=lr)
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=lr, adapt_mask=ADAPT, decay_mask=DECAY, **HYPER)
        lr_prev = lr
        for p, gg in zip(params, g):
            p.grad = torch.tensor(gg)
        opt.step()
        sched.step()
    for p, ref in zip(params, ref_w):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("foreach", [False, True])
def test_lars_corrects_momentum_for_an_lr_set_by_hand_and_resumes_exactly(foreach):
    rng = np.random.default_rng(13)
    lrs = [0.5, 0.5, 2.0, 2.0, 0.2, 0.2]  # a jump and a drop, no scheduler
    grads = [_grads(rng, np.float64, step) for step in range(len(lrs))]

    def run(params, opt, steps):
        for step in steps:
            opt.param_groups[0]["lr"] = opt.param_groups[1]["lr"] = lrs[step]
            for p, g in zip(params, grads[step]):
                p.grad = torch.tensor(g)
            opt.step()

    straight = _torch_params(_initial(np.float64))
    run(straight, _lars(straight, foreach, momentum_correction=True), range(6))
    ref_w, ref_v = _initial(np.float64), [np.zeros(s) for s in SHAPES]
    for step, g in enumerate(grads):
        ref_v = momentum_correction(ref_v, lr_prev=lrs[max(step - 1, 0)], lr_next=lrs[step])
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=lrs[step], adapt_mask=ADAPT, decay_mask=DECAY, **HYPER)
    for p, ref in zip(straight, ref_w):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    first = _torch_params(_initial(np.float64))
    opt = _lars(first, foreach, momentum_correction=True)
    run(first, opt, range(2))  # stop just before the jump: the saved state must carry the LR of step 1
    resumed = [torch.tensor(p.detach().numpy(), requires_grad=True) for p in first]
    opt2 = _lars(resumed, foreach, momentum_correction=True)
    opt2.load_state_dict(opt.state_dict())
    run(resumed, opt2, range(2, 6))
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_is_torch_sgd_and_equals_the_numpy_u_form(nesterov):
    rng = np.random.default_rng(17)
    params = _torch_params(_initial(np.float64))
    groups = [{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.0}]
    opt = MomentumSGD(groups, 0.3, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
    assert isinstance(opt, torch.optim.SGD) and not opt.velocity_form
    ref_w, ref_u = _initial(np.float64), [np.zeros(s) for s in SHAPES]
    for step in range(5):
        g = _grads(rng, np.float64, step)
        for p, gg in zip(params, g):
            p.grad = torch.tensor(gg)
        opt.step()
        ref_w, ref_u = sgd_step(ref_w, g, ref_u, lr=0.3, momentum=0.9, weight_decay=0.01, nesterov=nesterov,
                                decay_mask=DECAY)
    for p, ref in zip(params, ref_w):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-12, atol=1e-14)


def test_momentum_correction_is_refused_for_u_form_sgd():
    with pytest.raises(ValueError, match="v-form"):
        MomentumSGD([torch.zeros(1, requires_grad=True)], 1.0, momentum_correction=True)


def test_param_groups_exclude_biases_and_norm_parameters():
    model = build_model("resnet-small")
    decay, no_decay = param_groups(model, weight_decay=5e-4)
    assert decay["weight_decay"] == 5e-4 and decay["lars_adapt"] is True
    assert no_decay["weight_decay"] == 0.0 and no_decay["lars_adapt"] is False
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert any(n.endswith("bn_last.weight") for n in no_decay["names"]) and "6.bias" in no_decay["names"]
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert bias_and_norm("6.bias", (10,)) and not bias_and_norm("6.weight", (10, 64))


def test_param_groups_take_another_exclusion_rule_or_none():
    model = build_model("mlp")
    (everything,) = param_groups(model, weight_decay=1e-4, exclude=None)
    assert everything["lars_adapt"] and len(everything["params"]) == len(list(model.parameters()))
    decay, no_decay = param_groups(model, weight_decay=1e-4, exclude=lambda name, shape: name.startswith("3."))
    assert no_decay["names"] == ["3.weight", "3.bias"] and decay["names"] == ["1.weight", "1.bias"]


@pytest.mark.parametrize("name, blocks, parameters", [("resnet-small", 3, None), ("resnet50", 16, 25_557_032)])
def test_models_zero_gamma_and_resnet50_size(name, blocks, parameters):
    model = build_model(name, input_shape=(3, 224, 224) if name == "resnet50" else (1, 28, 28),
                        num_classes=1000 if name == "resnet50" else 10)
    assert zero_gamma_init(model) == blocks
    zeroed = [m.bn_last.weight for m in model.modules() if hasattr(m, "bn_last")]
    assert all(float(w.detach().abs().sum()) == 0.0 for w in zeroed)
    if parameters:  # torchvision's resnet50 has 25,557,032 parameters
        assert sum(p.numel() for p in model.parameters()) == parameters
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("vgg16")


MLPERF = mlperf_resnet50_lars().replace(world_size=1, per_worker_batch=64, dataset_size=64 * 30, epochs=4.0,
                                        warmup_epochs=1.0)  # 30 steps per epoch: warmup from 0, then poly(2) + 1


@pytest.mark.parametrize("foreach", [False, True])
def test_lars_with_the_mlperf_preset_equals_the_core_without_momentum_correction(foreach):
    r = MLPERF
    rng = np.random.default_rng(19)
    params = _torch_params(_initial(np.float64))
    groups = [{"params": params[:2]}, {"params": params[2:], "lars_adapt": False, "weight_decay": 0.0}]
    opt = LARS(groups, r.peak_lr, momentum=r.momentum, weight_decay=r.weight_decay,
               trust_coefficient=r.trust_coefficient, eps=r.lars_eps, momentum_correction=r.momentum_correction,
               foreach=foreach)
    sched = RecipeLR(opt, r)
    ref_w, ref_v = _initial(np.float64), [np.zeros(s) for s in SHAPES]
    for step in range(r.total_steps):
        assert opt.param_groups[0]["lr"] == pytest.approx(r.lr(step), rel=1e-12, abs=0)
        g = _grads(rng, np.float64, step)
        for p, gg in zip(params, g):
            p.grad = torch.tensor(gg)
        opt.step()
        sched.step()
        ref_w, ref_v = lars_step(ref_w, g, ref_v, lr=r.lr(step), momentum=0.9, weight_decay=2e-4,
                                 trust_coefficient=0.001, eps=1e-7, adapt_mask=ADAPT, decay_mask=DECAY)
    for p, ref in zip(params, ref_w):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-10, atol=1e-12)


def _torch_label_smoothing():
    from backends.torch.engine import TorchEngine

    engine = TorchEngine(threads=1, device="cpu")
    recipe = Recipe(per_worker_batch=16, dataset_size=64, epochs=1.0, warmup="none", decay="none",
                    label_smoothing=0.1)
    engine.build(recipe, model="mlp", input_shape=(1, 28, 28), num_classes=10, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 16)
    with torch.no_grad():
        logits = engine.model(torch.from_numpy(x)).double().numpy()
    loss = float(engine.train_step([(x, y)]))
    assert loss == pytest.approx(cross_entropy(logits, y, label_smoothing=0.1), rel=1e-6)
    assert loss != pytest.approx(cross_entropy(logits, y), rel=1e-3)
    with torch.no_grad():
        after = engine.model(torch.from_numpy(x)).double().numpy()
    summed, _, count = engine.evaluate(x, y)
    assert summed / count == pytest.approx(cross_entropy(after, y), rel=1e-6)


def test_engine_trains_on_the_label_smoothed_loss_and_evaluates_plain_cross_entropy():
    """The engine starts Horovod: in a process of its own."""
    in_own_process(_torch_label_smoothing)
