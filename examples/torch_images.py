"""Train on an image folder (or tar shards) with the harness's input pipeline, in your own PyTorch script.

    horovodrun -np 2 -H localhost:2 python examples/torch_images.py --data DIR --out runs/torch-images

DIR is DIR/train/<class>/<image> and DIR/val/<class>/<image> (or 'SHARDS/train-*.tar'). Each rank reads its
share of one shuffle per epoch, decoded ahead by worker processes with the papers' random-resized crops and
flips; batches arrive as uint8 and are normalised on the device. Each rank writes rank<R>.json.
"""

import argparse
import hashlib
import json
from pathlib import Path

import horovod.torch as hvd
import torch
import torch.nn.functional as F

from backends.torch import (
    DistributedOptimizer,
    MomentumSGD,
    RecipeLR,
    broadcast_initial_state,
    metric_average,
    normalize_images,
    param_groups,
    pin_gpu,
)
from harness import Recipe
from harness.runtime.config import DataConfig
from harness.runtime.data import open_images


def main() -> None:
    parser = argparse.ArgumentParser(description="The large-minibatch recipe on images, in a PyTorch script.")
    parser.add_argument("--data", required=True, help="an image folder, or a tar shard pattern")
    parser.add_argument("--out", type=Path, required=True, help="directory for rank<R>.json")
    args = parser.parse_args()
    # Open the data first: its decode workers start before Horovod and torch start their threads.
    source = open_images(DataConfig(source=args.data, image_size=32, data_workers=1), seed=0)
    hvd.init()
    device = pin_gpu()
    torch.set_num_threads(1)
    recipe = Recipe(name="torch-images", reference_lr=0.1, reference_batch=32, world_size=hvd.size(),
                    per_worker_batch=8, dataset_size=source.train_size, epochs=2, warmup_epochs=1, decay="poly")
    channels = source.input_shape[0]
    model = torch.nn.Sequential(torch.nn.Conv2d(channels, 16, 3, stride=2), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(16, source.num_classes)).to(device)
    optimizer = MomentumSGD(param_groups(model, weight_decay=recipe.weight_decay), recipe.peak_lr,
                            momentum=recipe.momentum)
    optimizer = DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    broadcast_initial_state(model, optimizer)
    scheduler = RecipeLR(optimizer, recipe)

    lrs = []
    for epoch in range(int(recipe.epochs)):
        for (images, labels), in source.train_batches(epoch, consumed=0, rank=hvd.rank(), world_size=hvd.size(),
                                                      per_worker_batch=recipe.per_worker_batch):
            x = normalize_images(torch.from_numpy(images).to(device, non_blocking=True), source.normalization)
            loss = F.cross_entropy(model(x), torch.from_numpy(labels).to(device))
            optimizer.zero_grad()
            loss.backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        correct = count = 0  # this rank's share of the validation set, each image on one rank
        with torch.no_grad():
            for images, labels in source.eval_batches(rank=hvd.rank(), world_size=hvd.size()):
                x = normalize_images(torch.from_numpy(images).to(device), source.normalization)
                correct += int((model(x).argmax(1).cpu() == torch.from_numpy(labels)).sum())
                count += len(labels)
        total = metric_average({"correct": correct * hvd.size(), "count": count * hvd.size()})  # sums over ranks
        if hvd.rank() == 0:
            print(f"epoch {epoch}: loss {loss.item():.4f}, val accuracy {total['correct'] / total['count']:.3f}",
                  flush=True)
    source.close()

    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{hvd.rank()}.json").write_text(json.dumps({
        "rank": hvd.rank(), "recipe": recipe.to_dict(), "lrs": lrs, "validated": total["count"],
        "params_sha256": hashlib.sha256(params.tobytes()).hexdigest()}))


if __name__ == "__main__":
    main()
