"""Worker: one epoch of the LARS recipe (weight decay, warmup, momentum correction) on softmax regression,
with the torch backend's public API, under a launcher; float64, so the test can hold it to the numpy spec.

    horovodrun -np 2 -H localhost:2 python tests/parallel/spec_worker.py OUT_DIR

Every rank starts from different weights (seeded by its rank); rank 0's are written before the broadcast.
Rank r writes rank<r>.npz: ``initial`` (rank 0 only: before the broadcast), ``after_broadcast``, and the
parameters after each step ``step<t>``, each the weight (C, D) and bias (C,) concatenated.
"""

import sys
from pathlib import Path

import horovod.torch as hvd
import numpy as np
import torch
import torch.nn.functional as F

from backends.torch import LARS, DistributedOptimizer, RecipeLR, broadcast_initial_state, param_groups
from harness import Recipe
from harness.sharding import batches, epoch_indices

FEATURES, CLASSES, DATASET, N = 6, 3, 64, 8


def dataset() -> tuple[np.ndarray, np.ndarray]:
    """The same (x (64, 6) float64, y (64,) int64) on every rank."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(DATASET, FEATURES)), rng.integers(0, CLASSES, DATASET)


def recipe(world_size: int) -> Recipe:
    return Recipe(name="spec", reference_lr=0.1, reference_batch=N, world_size=world_size, per_worker_batch=N,
                  dataset_size=DATASET, epochs=1.0, warmup_epochs=0.5, decay="poly", optimizer="lars",
                  trust_coefficient=0.02, weight_decay=1e-2, momentum=0.9)


def flat(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def main(out: Path) -> None:
    hvd.init()
    torch.manual_seed(hvd.rank())
    r = recipe(hvd.size())
    model = torch.nn.Linear(FEATURES, CLASSES).double()
    saved = {"initial": flat(model)}
    optimizer = LARS(param_groups(model, weight_decay=r.weight_decay), r.peak_lr, momentum=r.momentum,
                     trust_coefficient=r.trust_coefficient, momentum_correction=True)
    optimizer = DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    broadcast_initial_state(model, optimizer)
    saved["after_broadcast"] = flat(model)
    scheduler = RecipeLR(optimizer, r)
    x, y = dataset()
    shard = epoch_indices(DATASET, epoch=0, seed=0, rank=hvd.rank(), world_size=hvd.size())
    for step, batch in enumerate(batches(shard, N)):
        loss = F.cross_entropy(model(torch.from_numpy(x[batch])), torch.from_numpy(y[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        saved[f"step{step}"] = flat(model)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{hvd.rank()}.npz", **saved)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
