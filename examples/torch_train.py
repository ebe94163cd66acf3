"""Train a small MLP with the large-minibatch recipe on k Horovod workers, in PyTorch.

    horovodrun -np 2 -H localhost:2 python examples/torch_train.py --out runs/torch-example

The recipe scales the LR linearly with the global batch kn and warms it up gradually over the first
epoch (Goyal et al. 2017); LARS adapts it per layer, with momentum correction (You et al. 2017).
Each rank writes rank<R>.json: the recipe, the LR of every step and a hash of its final parameters.
"""

import argparse
import hashlib
import json
from pathlib import Path

import horovod.torch as hvd
import torch
import torch.nn.functional as F

from backends.torch import (
    LARS,
    DistributedOptimizer,
    RecipeLR,
    broadcast_initial_state,
    metric_average,
    param_groups,
    pin_gpu,
)
from harness import Recipe
from harness.datasets import synthetic
from harness.sharding import batches, epoch_indices


def main() -> None:
    parser = argparse.ArgumentParser(description="The large-minibatch recipe in a PyTorch script.")
    parser.add_argument("--out", type=Path, required=True, help="directory for rank<R>.json")
    args = parser.parse_args()
    hvd.init()
    device = pin_gpu()  # cuda:local_rank on a GPU host, else the CPU
    torch.set_num_threads(1)
    torch.manual_seed(hvd.rank())  # different weights on every rank: broadcast_initial_state makes them equal

    data = synthetic(train_size=2048, test_size=256, seed=0)  # or harness.datasets.load_fashion_mnist()
    recipe = Recipe(name="torch-example", reference_lr=0.1, reference_batch=32, world_size=hvd.size(),
                    per_worker_batch=32, dataset_size=len(data.y_train), epochs=3, warmup_epochs=1,
                    decay="poly", optimizer="lars", trust_coefficient=0.02, weight_decay=5e-4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, data.num_classes)).to(device)

    # Biases get no weight decay and no LARS scaling; the optimizer starts at the peak LR.
    optimizer = LARS(param_groups(model, weight_decay=recipe.weight_decay), recipe.peak_lr,
                     momentum=recipe.momentum, trust_coefficient=recipe.trust_coefficient, momentum_correction=True)
    optimizer = DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    broadcast_initial_state(model, optimizer)
    scheduler = RecipeLR(optimizer, recipe)  # each step: LR = peak_lr × recipe.multiplier(step)

    lrs = []
    for epoch in range(int(recipe.epochs)):
        shard = epoch_indices(recipe.dataset_size, epoch=epoch, seed=0, rank=hvd.rank(), world_size=hvd.size())
        for batch in batches(shard, recipe.per_worker_batch):
            x, y = torch.from_numpy(data.x_train[batch]).to(device), torch.from_numpy(data.y_train[batch]).to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()  # Horovod averages the gradients over the k workers
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        mean = metric_average({"loss": loss.item()})
        if hvd.rank() == 0:
            print(f"epoch {epoch}: loss {mean['loss']:.4f} (mean over {hvd.size()} ranks)", flush=True)

    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{hvd.rank()}.json").write_text(json.dumps({
        "rank": hvd.rank(), "recipe": recipe.to_dict(), "lrs": lrs,
        "params_sha256": hashlib.sha256(params.tobytes()).hexdigest()}))


if __name__ == "__main__":
    main()
