"""Peers measured in the same run as the harness: the same model and batch in another engine's loop.

A peer is a measurement baseline, not a training backend. Each runs on the same device, precision,
memory format, model, per-worker batch and thread count, in the same processes (so the same launcher
layout: k ranks, same hosts) right after the harness's own measurement, so all see the same machine:

- ``plain``: the loop a user would write without Horovod and without this harness (forward, loss,
  backward, ``SGD.step``); no communication at any k: the no-communication ceiling.
- ``horovod`` (torch): a bare ``horovod.torch`` loop as in Horovod's ``pytorch_synthetic_benchmark.py``:
  ``hvd.DistributedOptimizer`` over momentum SGD, ``backward``, ``step``; nothing else per step.
- ``ddp`` (torch): ``torch.nn.parallel.DistributedDataParallel`` on a ``torch.distributed`` process
  group of the same k ranks (Gloo on the CPU, NCCL on CUDA), bucketed allreduce overlapping backward.

Its images/s per worker divides the harness's images/s per worker to give ``ratio_to_<peer>``; the
weak-scaling efficiency of each side, images/s at k over k × images/s at k = 1, comes from two such
runs (:func:`weak_scaling`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.timing import time_calls

PEERS = ("plain", "horovod", "ddp")
TORCH_ONLY = ("horovod", "ddp")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where and how a peer computes: the harness engine's device, precision and memory format.

    Attributes:
        device_type: ``"cpu"`` or ``"cuda"``; index: the GPU index (None on a CPU).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``; channels_last: channels-last inputs (torch).
    """

    device_type: str = "cpu"
    index: int | None = None
    precision: str = "fp32"
    channels_last: bool = False

    @classmethod
    def of(cls, device_info: dict) -> Placement:
        """From an engine's ``device_info()`` record (:class:`harness.runtime.engine.Engine`)."""
        return cls(device_info.get("type", "cpu"), device_info.get("index"), device_info.get("precision", "fp32"),
                   bool(device_info.get("channels_last", False)))

    def torch_device(self):
        """The ``torch.device``."""
        import torch

        return torch.device("cuda", self.index) if self.device_type == "cuda" else torch.device("cpu")


def plain_torch(engine, model, batch: tuple[np.ndarray, np.ndarray], *, where: Placement, num_classes: int,
                warmup_steps: int, steps: int, seed: int = 0) -> list[float]:
    """Step times (seconds) of a plain torch loop on the harness's device, precision and memory format.

    Args:
        engine: the harness's engine (unused: a plain loop makes no collective call).
        where: the device, precision and memory format to run at.
        model: the model name or :class:`harness.runtime.models.UserModel` the harness measured.
        batch: one (x (n, C, H, W) float32, y (n,) int64) batch, reused every step.
        num_classes: the model's output classes.
        warmup_steps: untimed steps first.
        steps: timed steps.

    Returns:
        ``steps`` step times, each ending with a device synchronisation on CUDA.
    """
    import torch

    net = _torch_net(where, model, batch, num_classes, seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    return time_calls(_torch_step(where, net, optimizer, batch), steps, warmup_steps)


def plain_keras(engine, model, batch: tuple[np.ndarray, np.ndarray], *, where: Placement, num_classes: int,
                warmup_steps: int, steps: int, seed: int = 0) -> list[float]:
    """Step times (seconds) of a plain Keras 3 training step (``tf.function``, Keras SGD), same policy."""
    import keras
    import tensorflow as tf

    from backends.keras.engine import to_channels_last
    from backends.keras.models import build_model

    keras.utils.set_random_seed(seed)
    c, h, w = batch[0].shape[1:]
    net = build_model(model, input_shape=(h, w, c), num_classes=num_classes) if isinstance(model, str) \
        else model.build((h, w, c), num_classes, keras.Model)
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = tf.constant(to_channels_last(batch[0])), tf.constant(batch[1])

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(net(x, training=True), tf.float32))
        optimizer.apply(tape.gradient(loss, net.trainable_variables), net.trainable_variables)
        return loss

    return time_calls(lambda: float(train_step()), steps, warmup_steps)


def _torch_net(where: Placement, model, batch, num_classes: int, seed: int):
    """The harness's model, freshly built with ``seed`` on ``where``'s device."""
    import torch

    from backends.torch.models import build_model

    torch.manual_seed(seed)
    shape = tuple(batch[0].shape[1:])
    net = build_model(model, input_shape=shape, num_classes=num_classes) if isinstance(model, str) \
        else model.build(shape, num_classes, torch.nn.Module)
    # The engine's memory format: weights stay contiguous (Horovod's broadcast and allreduce refuse other
    # layouts) and channels-last inputs make the convolutions run channels-last (_torch_step's to_device).
    return net.to(where.torch_device()).train()


def _torch_step(where: Placement, net, optimizer, batch, *, horovod: bool = False):
    """One forward/backward/step closure over a fixed batch, as the bare loops run it.

    With fp16 a ``GradScaler`` scales the loss. On Horovod's ``DistributedOptimizer`` (``horovod=True``)
    it follows Horovod's AMP order (``examples/pytorch/pytorch_mnist.py``): ``synchronize()`` so the
    allreduces are done, ``unscale_``, then ``scaler.step`` under ``skip_synchronize()``; otherwise
    ``unscale_`` would race the in-flight allreduces, and a skipped step would leave them pending.
    """
    import torch
    import torch.nn.functional as F

    from backends.torch.device import autocast, to_device

    device = where.torch_device()
    x = to_device(batch[0], device, channels_last=where.channels_last)
    y = to_device(batch[1], device)
    scaler = torch.amp.GradScaler(device.type) if where.precision == "fp16" else None

    def scaled_step():
        if horovod:
            optimizer.synchronize()
            scaler.unscale_(optimizer)
            with optimizer.skip_synchronize():
                scaler.step(optimizer)
        else:
            scaler.step(optimizer)
        scaler.update()

    def step():
        optimizer.zero_grad()  # set_to_none (torch's default; Horovod's wrapper takes no argument)
        with autocast(device, where.precision):
            loss = F.cross_entropy(net(x), y)
        if scaler:
            scaler.scale(loss).backward()
            scaled_step()
        else:
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def bare_horovod(engine, model, batch, *, where: Placement, num_classes: int, warmup_steps: int, steps: int,
                 seed: int = 0):
    """Step times (seconds) of a bare ``horovod.torch`` loop over the same k ranks.

    Horovod's documented usage and nothing more: momentum SGD wrapped in ``hvd.DistributedOptimizer``
    (named parameters, ``op=Average``), parameters broadcast from rank 0, then per step ``zero_grad``,
    forward, ``backward`` (allreduce overlapping it), ``step`` (with fp16: Horovod's AMP order, see
    :func:`_torch_step`). No non-finite check, no LR schedule. Weights stay contiguous with
    ``channels_last`` (inputs are channels-last), as Horovod's ``broadcast_parameters`` requires.
    """
    import horovod.torch as hvd
    import torch

    net = _torch_net(where, model, batch, num_classes, seed)
    optimizer = hvd.DistributedOptimizer(torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9),
                                         named_parameters=net.named_parameters(), op=hvd.Average)
    hvd.broadcast_parameters(net.state_dict(), root_rank=0)
    return time_calls(_torch_step(where, net, optimizer, batch, horovod=True), steps, warmup_steps)


def ddp(engine, model, batch, *, where: Placement, num_classes: int, warmup_steps: int, steps: int, seed: int = 0):
    """Step times (seconds) of torch ``DistributedDataParallel`` over the same k ranks.

    The process group is made for the measurement and destroyed after it: rank 0 picks a free TCP
    port on its own host name (the address the other hosts reach it by) and broadcasts it through
    Horovod; Gloo on the CPU, NCCL on CUDA. DDP's default 25 MiB buckets.
    """
    import gc
    import socket

    import torch
    import torch.distributed as dist

    if engine.rank == 0:
        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        address = (socket.gethostname() if engine.size > 1 else "127.0.0.1", port)
    else:
        address = None
    host, port = engine.broadcast_object(address)
    dist.init_process_group("nccl" if where.device_type == "cuda" else "gloo", init_method=f"tcp://{host}:{port}",
                            rank=engine.rank, world_size=engine.size)
    net = _torch_net(where, model, batch, num_classes, seed)
    device_ids = [where.index] if where.device_type == "cuda" else None
    wrapped = torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.01, momentum=0.9)
    times = time_calls(_torch_step(where, wrapped, optimizer, batch), steps, warmup_steps)
    # Tear down in order, every rank together: DDP's reducer holds the group, and a group freed while
    # a peer still uses it (or freed implicitly when this frame ends) was seen to hang Gloo.
    dist.barrier()
    del optimizer, wrapped, net
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    return times


def run_peer(peer: str, engine, model, batch, *, num_classes: int, warmup_steps: int, steps: int) -> dict:
    """Measure ``peer`` on every rank and gather the timings (a collective).

    Returns:
        ``{"peer", "images_per_second", "images_per_second_per_worker", "step_time_s_per_rank"}``,
        the total summed from every rank's own median step time.

    Raises:
        ValueError: an unknown peer, or a torch-only peer with the Keras engine.
    """
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {', '.join(PEERS)}, got {peer!r}")
    if peer in TORCH_ONLY and engine.name != "torch":
        raise ValueError(f"peer {peer} is a torch loop: use it with the torch engine (Keras: peer plain)")
    measure = {"plain": plain_torch if engine.name == "torch" else plain_keras, "horovod": bare_horovod,
               "ddp": ddp}[peer]
    where = Placement.of(engine.device_info())  # the protocol's record, not a backend's attributes
    times = measure(engine, model, batch, where=where, num_classes=num_classes, warmup_steps=warmup_steps,
                    steps=steps)
    medians = engine.allgather_object(float(np.median(times)))
    n = len(batch[1])
    total = sum(n / m for m in medians)
    return {"peer": peer, "images_per_second": total, "images_per_second_per_worker": total / len(medians),
            "step_time_s_per_rank": medians}


def weak_scaling(base: dict, scaled: dict) -> dict[str, float]:
    """Weak-scaling efficiency, images/s at k over k × images/s at the base k, of the harness and each peer.

    Args:
        base: a throughput ``summary.json`` (usually k = 1).
        scaled: another one with the same model and per-worker batch at a larger k.

    Returns:
        ``{"harness": e, "<peer>": e, ...}`` for the harness and every peer measured in both runs
        (a fraction; 1.0 is perfect scaling). The plain peer's is its no-communication ceiling.

    Raises:
        ValueError: the two runs differ in model or per-worker batch, or ``scaled`` is not larger.
    """
    for key in ("model", "per_worker_batch"):
        if base.get(key) != scaled.get(key):
            raise ValueError(f"weak scaling compares runs with the same {key}: {base.get(key)} vs {scaled.get(key)}")
    if scaled["world_size"] <= base["world_size"]:
        raise ValueError(f"the scaled run's k ({scaled['world_size']}) must exceed the base's ({base['world_size']})")
    factor = scaled["world_size"] / base["world_size"]
    out = {"harness": scaled["images_per_second"] / (factor * base["images_per_second"])}
    for peer in sorted(set(base.get("peers", {})) & set(scaled.get("peers", {}))):
        out[peer] = (scaled["peers"][peer]["images_per_second"]
                     / (factor * base["peers"][peer]["images_per_second"]))
    return out
