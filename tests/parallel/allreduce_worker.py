"""A tiny Horovod job: sum a rank-dependent tensor with horovod.torch and horovod.tensorflow.

Every rank checks the result against the closed form and prints one line; exit 1 on mismatch.
"""

import os
import sys

import numpy as np


def main() -> int:
    import horovod.tensorflow as hvd_tf
    import horovod.torch as hvd
    import tensorflow as tf
    import torch

    hvd.init()
    hvd_tf.init()
    rank, size = hvd.rank(), hvd.size()
    expected = np.array([sum(r + 1 for r in range(size)), 10 * sum(r + 1 for r in range(size))], dtype=np.float32)
    mine = np.array([rank + 1, 10 * (rank + 1)], dtype=np.float32)
    got_torch = hvd.allreduce(torch.from_numpy(mine), op=hvd.Sum, name="t").numpy()
    got_tf = hvd_tf.allreduce(tf.constant(mine), op=hvd_tf.Sum, name="k").numpy()
    ok = np.array_equal(got_torch, expected) and np.array_equal(got_tf, expected)
    print(f"rank {rank}/{size} torch={got_torch.tolist()} tf={got_tf.tolist()} {'ok' if ok else 'MISMATCH'}", flush=True)
    hvd_tf.shutdown()  # MPI finalized here, before the interpreter's teardown
    hvd.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Both Horovod libraries (torch's and TensorFlow's) share MPI in this one process; after both have shut
    # down, the interpreter's teardown of the two can still segfault. The result is printed: leave without it.
    os._exit(code)
