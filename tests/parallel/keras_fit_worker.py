"""``model.fit`` on k Horovod workers with this project's Keras 3 callbacks (no horovod.tensorflow.keras).

Each rank trains on its own shard with different initial weights; BroadcastInitialVariables must make
them equal and the distributed optimizer keep them so. Prints one line per rank with a weight hash.
"""

import hashlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import horovod.tensorflow as hvd  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from backends.keras import BroadcastInitialVariables, DistributedOptimizer, MetricAverage, MomentumSGD, rank0_only  # noqa: E402
from backends.keras.models import mlp  # noqa: E402
from harness.datasets import synthetic  # noqa: E402
from harness.sharding import epoch_indices  # noqa: E402


def main() -> int:
    hvd.init()
    keras.utils.set_random_seed(100 + hvd.rank())  # different weights per rank on purpose
    data = synthetic(train_size=512, test_size=64, seed=1)
    shard = epoch_indices(512, epoch=0, seed=0, rank=hvd.rank(), world_size=hvd.size())
    x = np.transpose(data.x_train[shard], (0, 2, 3, 1))
    model = mlp()
    model.compile(optimizer=DistributedOptimizer(MomentumSGD(0.05, momentum=0.9, weight_decay=1e-4)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=False)
    history = model.fit(x, data.y_train[shard], batch_size=32, epochs=2, verbose=0, shuffle=False,
                        callbacks=[BroadcastInitialVariables(0), MetricAverage(),
                                   *rank0_only(keras.callbacks.CSVLogger(os.environ.get("FIT_LOG", "/dev/null")))])
    digest = hashlib.sha256(np.concatenate([np.asarray(v).ravel() for v in model.trainable_variables]).tobytes())
    loss = history.history["loss"][-1]
    print(f"rank {hvd.rank()} weights {digest.hexdigest()[:16]} loss {loss:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
