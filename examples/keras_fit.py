"""Train a small MLP with the large-minibatch recipe on k Horovod workers, with Keras 3's model.fit.

    horovodrun -np 2 -H localhost:2 python examples/keras_fit.py --out runs/keras-example

Goyal et al. 2017: the LR scales linearly with the global batch kn, warms up gradually over the first
epoch, and drops by 10 at epoch 2; momentum SGD in torch's form. Each rank writes rank<R>.json: the
recipe, the LR of every step and a hash of its final weights.
"""

import argparse
import hashlib
import json
from pathlib import Path

import horovod.tensorflow as hvd
import keras
import numpy as np

from backends.keras import (
    BroadcastInitialVariables,
    DistributedOptimizer,
    MetricAverage,
    MomentumSGD,
    RecipeLR,
    pin_gpu,
    rank0_only,
)
from harness import Recipe
from harness.datasets import synthetic
from harness.sharding import epoch_indices


def main() -> None:
    parser = argparse.ArgumentParser(description="The large-minibatch recipe in a Keras model.fit script.")
    parser.add_argument("--out", type=Path, required=True, help="directory for rank<R>.json")
    args = parser.parse_args()
    hvd.init()
    pin_gpu()  # only GPU local_rank visible, with memory growth (before any tensor exists); no-op on a CPU host
    keras.utils.set_random_seed(hvd.rank())  # different weights on every rank: the broadcast makes them equal

    data = synthetic(train_size=2048, test_size=256, seed=0)  # or harness.datasets.load_fashion_mnist()
    recipe = Recipe(name="keras-example", reference_lr=0.1, reference_batch=32, world_size=hvd.size(),
                    per_worker_batch=32, dataset_size=len(data.y_train), epochs=3, warmup_epochs=1,
                    milestones_epochs=(2,), weight_decay=5e-4)
    shard = epoch_indices(recipe.dataset_size, epoch=0, seed=0, rank=hvd.rank(), world_size=hvd.size())
    x, y = np.transpose(data.x_train[shard], (0, 2, 3, 1)), data.y_train[shard]  # NHWC: this rank's shard

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(data.num_classes)])
    optimizer = DistributedOptimizer(MomentumSGD(RecipeLR(recipe), momentum=recipe.momentum,
                                                 weight_decay=recipe.weight_decay))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)  # Horovod's allreduce has no XLA kernel here

    args.out.mkdir(parents=True, exist_ok=True)
    lrs = []
    log_lr = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: lrs.append(float(optimizer.learning_rate)))
    model.fit(x, y, batch_size=recipe.per_worker_batch, epochs=int(recipe.epochs), shuffle=True,
              verbose=2 if hvd.rank() == 0 else 0,
              callbacks=[BroadcastInitialVariables(), MetricAverage(), log_lr,
                         *rank0_only(keras.callbacks.CSVLogger(str(args.out / "history.csv")))])

    weights = np.concatenate([np.asarray(v).ravel() for v in model.trainable_variables])
    (args.out / f"rank{hvd.rank()}.json").write_text(json.dumps({
        "rank": hvd.rank(), "recipe": recipe.to_dict(), "lrs": lrs,
        "params_sha256": hashlib.sha256(weights.tobytes()).hexdigest()}))


if __name__ == "__main__":
    main()
