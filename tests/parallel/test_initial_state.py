"""The recipe's first step: ``broadcast_initial_state`` changes nothing, and k = 2 torch steps equal the numpy spec.

Horovod's ``broadcast_optimizer_state`` initialises a stateless optimizer by one ``step()`` on zero gradients;
with weight decay that is a decay step at the peak LR which also leaves momentum (measured before the fix:
max |Δw| = 1.5e-4 and 2 non-zero momentum buffers for a 2-layer MLP under LARS at LR 3.2).
"""

import sys

import numpy as np
import pytest

from harness.lars import lars_step
from harness.sgd import momentum_correction
from harness.sharding import batches, epoch_indices
from tests.conftest import ROOT, in_own_process
from tests.parallel import spec_worker

pytestmark = pytest.mark.parallel


def _broadcast_at_k1():
    import horovod.torch as hvd
    import torch

    from backends.torch import LARS, DistributedOptimizer, broadcast_initial_state, param_groups

    hvd.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = DistributedOptimizer(LARS(param_groups(model, weight_decay=1e-4), 3.2, momentum=0.9,
                                          trust_coefficient=0.001), named_parameters=model.named_parameters())
    broadcast_initial_state(model, optimizer)
    identical = all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    buffers = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    lrs = [group["lr"] for group in optimizer.param_groups]
    hvd.shutdown()
    return identical, len(buffers), lrs


def test_broadcast_initial_state_leaves_parameters_bit_unchanged_and_no_momentum():
    identical, buffers, lrs = in_own_process(_broadcast_at_k1)
    assert identical and buffers == 0 and lrs == [3.2, 3.2]


def _grads(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the mean softmax cross-entropy over the batch (x (B, D), y (B,)) w.r.t. W (C, D) and b (C,)."""
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p.T @ x / len(y), p.sum(axis=0) / len(y)


def spec_steps(initial: np.ndarray, k: int) -> list[np.ndarray]:
    """The recipe's steps in numpy: kn-normalised gradient, LARS on W (decayed), plain momentum SGD on b."""
    recipe, (x, y) = spec_worker.recipe(k), spec_worker.dataset()
    c, d = spec_worker.CLASSES, spec_worker.FEATURES
    params, velocities = [initial[:c * d].reshape(c, d), initial[c * d:]], [np.zeros((c, d)), np.zeros(c)]
    shards = [list(batches(epoch_indices(len(y), epoch=0, seed=0, rank=r, world_size=k), recipe.per_worker_batch))
              for r in range(k)]
    out = []
    for step in range(recipe.steps_per_epoch):
        batch = np.concatenate([shard[step] for shard in shards])  # the kn images of this step
        lr = float(recipe.lr(step))
        if step:
            velocities = momentum_correction(velocities, lr_prev=float(recipe.lr(step - 1)), lr_next=lr)
        params, velocities = lars_step(params, list(_grads(*params, x[batch], y[batch])), velocities, lr=lr,
                                       momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                                       trust_coefficient=recipe.trust_coefficient, adapt_mask=[True, False],
                                       decay_mask=[True, False])
        out.append(np.concatenate([p.ravel() for p in params]))
    return out


def test_first_steps_of_two_torch_workers_with_weight_decay_equal_the_numpy_spec(tmp_path, launched):
    from harness.runtime.launch import launch_command

    worker = [sys.executable, str(ROOT / "tests" / "parallel" / "spec_worker.py"), str(tmp_path)]
    proc = launched(launch_command(worker, launcher="horovodrun", np=2, hosts="localhost:2", controller="gloo"),
                    timeout=120)
    assert proc.returncode == 0, proc.output
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    initial = ranks[0]["initial"]
    assert not np.array_equal(initial, ranks[1]["initial"])  # the ranks started apart
    expected = spec_steps(initial, 2)
    assert len(expected) == 4 and float(spec_worker.recipe(2).lr(0)) < spec_worker.recipe(2).peak_lr  # in warmup
    for rank in ranks:
        assert np.array_equal(rank["after_broadcast"], initial)  # bit-unchanged: no step in the broadcast
        for step, want in enumerate(expected):
            np.testing.assert_allclose(rank[f"step{step}"], want, rtol=1e-10, atol=1e-12, err_msg=f"step {step}")
