"""On a CUDA device: LARS.step makes no device→host sync and equals the CPU result (skipped without CUDA)."""

import numpy as np
import pytest
import torch

from backends.torch import LARS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _params(device):
    rng = np.random.default_rng(0)
    values = [rng.normal(size=s) for s in ((64, 32), (32,), (3, 3, 8, 8))]
    values[1][:] = 0  # a zero-norm layer takes the torch.where guard, not a Python if
    return [torch.tensor(v, dtype=torch.float32, device=device, requires_grad=True) for v in values]


@pytest.mark.parametrize("foreach", [False, True])
def test_step_has_no_sync_and_matches_cpu(foreach):
    results = {}
    for device in ("cpu", "cuda"):
        params = _params(device)
        opt = LARS(params, lr=0.5, weight_decay=1e-4, trust_clip=True, foreach=foreach)
        rng = np.random.default_rng(1)
        for _ in range(3):
            for p in params:
                p.grad = torch.tensor(rng.normal(size=tuple(p.shape)), dtype=torch.float32, device=device)
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            try:
                opt.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        results[device] = [p.detach().cpu().numpy() for p in params]
    for a, b in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
