"""Measured gradient readiness of a torch model at k = 1: when each parameter's gradient is ready in backward.

A post-accumulate-grad hook on every parameter (``Tensor.register_post_accumulate_grad_hook``, torch ≥ 2.1)
records ``time.perf_counter()`` when autograd has written that gradient, which is when Horovod's
``DistributedOptimizer`` hook would hand it to the background thread. On CUDA each hook synchronizes
the device first, so the time is when the gradient is computed, not when its kernel was queued (this
slows backward a little; the times are as measured with the hooks). The per-parameter
times are medians over the timed steps, measured from the end of the forward pass.

Run it beside a throughput run and ``harness project --from-run`` / ``harness report`` use it::

    python -m benchmarks.layer_trace --model resnet-small --per-worker-batch 32 --out RUN_DIR/layers.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

LAYERS_FILE = "layers.json"


def _one_step(model, x, y, loss_fn, marks: dict, sync) -> tuple[float, float]:
    model.zero_grad(set_to_none=True)
    marks.clear()
    t0 = time.perf_counter()
    loss = loss_fn(model(x), y)
    sync()
    t1 = time.perf_counter()
    marks["_start"] = t1
    loss.backward()
    sync()
    return t1 - t0, time.perf_counter() - t1


def trace_backward(model, x, y, *, steps: int = 10, warmup: int = 3) -> dict:
    """Median forward and backward seconds and each parameter's gradient-ready time.

    Args:
        model: a torch ``nn.Module`` on the device of ``x``.
        x: one batch of inputs, shape (n, C, H, W); y: its integer labels, shape (n,).
        steps: timed steps (medians over these); warmup: untimed steps first.

    Returns:
        ``forward_s``, ``backward_s`` (medians, with the hooks in place), and ``params``: one dict per parameter in
        ready order with ``name``, ``bytes`` (fp32 gradient) and ``ready_s`` (seconds after forward ends).
    """
    import torch

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    marks: dict = {}
    handles = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            def hook(_, name=name):
                sync()
                marks[name] = time.perf_counter() - marks["_start"]
            handles.append(param.register_post_accumulate_grad_hook(hook))
    loss_fn = torch.nn.CrossEntropyLoss()
    forward, backward, ready = [], [], {}
    try:
        for step in range(warmup + steps):
            f, b = _one_step(model, x, y, loss_fn, marks, sync)
            if step >= warmup:
                forward.append(f)
                backward.append(b)
                for name, t in marks.items():
                    ready.setdefault(name, []).append(t)
    finally:
        for handle in handles:
            handle.remove()
    sizes = {name: p.numel() * 4 for name, p in model.named_parameters()}
    rows = sorted(({"name": n, "bytes": sizes[n], "ready_s": float(np.median(t))} for n, t in ready.items()
                   if n != "_start"), key=lambda r: r["ready_s"])
    return {"forward_s": float(np.median(forward)), "backward_s": float(np.median(backward)), "params": rows}


def load_trace(path: str | Path) -> dict:
    """Read a ``layers.json`` written by :func:`main`.

    Raises:
        ValueError: a file without ``params``, ``forward_s`` and ``backward_s``.
    """
    trace = json.loads(Path(path).read_text())
    if not {"params", "forward_s", "backward_s"} <= set(trace) or not trace["params"]:
        raise ValueError(f"{path}: not a layer trace (needs params, forward_s, backward_s)")
    return trace


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.layer_trace``: trace a built-in model on synthetic data and write JSON."""
    import torch

    from backends.torch.models import build_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="resnet-small", help="resnet-small, resnet50 or mlp")
    parser.add_argument("--per-worker-batch", type=int, default=32, help="n, images per step")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", required=True, help="layers.json to write (not overwritten)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        parser.exit(2, f"{out} exists; choose a new path\n")
    torch.set_num_threads(args.threads)
    shape, classes = ((3, 224, 224), 1000) if args.model == "resnet50" else ((1, 28, 28), 10)
    model = build_model(args.model, input_shape=shape, num_classes=classes).to(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.per_worker_batch, *shape, generator=gen).to(args.device)
    y = torch.randint(0, classes, (args.per_worker_batch,), generator=gen).to(args.device)
    trace = {"model": args.model, "per_worker_batch": args.per_worker_batch, "device": args.device,
             "threads": args.threads, **trace_backward(model, x, y, steps=args.steps)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trace, indent=1) + "\n")
    print(f"{args.model}: forward {trace['forward_s'] * 1e3:.1f} ms, backward {trace['backward_s'] * 1e3:.1f} ms, "
          f"{len(trace['params'])} gradients | {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
