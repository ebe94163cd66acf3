"""``make bench-peers``: this project against its peers, each comparison measured in one run.

Three comparisons, each repeated ``reps`` times with the sides alternating inside every repetition (so
a slow stretch of the machine hits all sides of a comparison alike), reported as min/median/max over
the repetitions:

1. **Optimizer step** on ResNet-50's 161 parameter tensors (25,557,032 parameters, the torch v1.5 model
   of :mod:`backends.torch.models`), one param group, lr 0.1, momentum 0.9, weight decay 1e-4, fixed
   random gradients, one intra-op thread: :class:`backends.torch.LARS` against timm's ``Lars``
   (``timm.optim.lars``; the reference LARS implementation most PyTorch users meet) and
   ``torch.optim.SGD`` (the floor: momentum SGD without trust ratios), each at its own default (``foreach``
   unset: all three pick the single-tensor loop on the CPU and ``torch._foreach_*`` on CUDA, as torch.optim
   does) and, separately, at ``foreach=True``. The figure is the median step time of ``steps`` steps per
   side per repetition; ratios are ours / theirs per repetition, defaults against defaults and foreach
   against foreach.
2. **Harness step against a bare Horovod loop** at k = 1: ``harness bench throughput --peers
   horovod,ddp,plain`` (:mod:`benchmarks.peers`), same model, per-worker batch, thread count.
3. **Weak-scaling efficiency** k = 1 → 2 of the harness, the bare Horovod loop and torch DDP (Gloo),
   from the k = 1 and k = 2 runs of the same repetition (:func:`benchmarks.peers.weak_scaling`); the
   plain loop's figure is the no-communication ceiling of k processes sharing this machine.

timm is a benchmark-only dependency (``requirements/bench.txt``, installed ``--no-deps`` by ``make
bench-peers``): only ``timm/optim/lars.py`` and its ``_helpers.py`` are loaded, as a package of their own,
because ``import timm`` pulls in torchvision, which has no CPU build here. The package never imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

from benchmarks.jobs import ThroughputJob
from benchmarks.timing import time_calls
from harness.runtime.launch import launch_command
from harness.runtime.records import JOB
from harness.runtime.worker import worker_command, write_job

ROOT = Path(__file__).resolve().parents[1]
# Each peer at its default and at foreach=True; a side's name says which.
OPTIMIZERS = ("harness LARS", "timm Lars", "SGD", "harness LARS foreach", "timm Lars foreach", "SGD foreach")


def load_timm_lars():
    """timm's ``Lars`` class, loaded from the installed timm without running ``timm/__init__``.

    Returns:
        ``(Lars, version)``.

    Raises:
        ModuleNotFoundError: timm is not installed (``make bench-peers`` installs it).
    """
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("timm is not installed: pip install --no-deps -r requirements/bench.txt")
    optim_dir = Path(list(spec.submodule_search_locations)[0]) / "optim"
    package = types.ModuleType("_timm_optim")
    package.__path__ = [str(optim_dir)]
    sys.modules["_timm_optim"] = package
    lars = importlib.import_module("_timm_optim.lars")
    from importlib.metadata import version

    return lars.Lars, version("timm")


def resnet50_tensors(seed: int = 0):
    """ResNet-50's parameters (161 tensors, float32) with fixed random gradients of scale 1e-3."""
    import torch

    from backends.torch.models import build_model

    torch.manual_seed(seed)
    params = [p.detach().clone().requires_grad_(True)
              for p in build_model("resnet50", input_shape=(3, 224, 224), num_classes=1000).parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    return params


def make_optimizers(params_for, names=OPTIMIZERS) -> dict:
    """The optimizers named in ``names`` (of :data:`OPTIMIZERS`), each on its own copy of the parameters
    (``params_for(name)``): a name ending in `` foreach`` passes ``foreach=True``, any other leaves
    ``foreach`` at the optimizer's default."""
    import torch

    from backends.torch import LARS

    timm_lars, _ = load_timm_lars()
    hyper = dict(momentum=0.9, weight_decay=1e-4)
    build = {"harness LARS": lambda params, **kw: LARS(params, 0.1, trust_coefficient=0.001, **hyper, **kw),
             "timm Lars": lambda params, **kw: timm_lars(params, lr=0.1, trust_coeff=0.001, eps=0.0, **hyper, **kw),
             "SGD": lambda params, **kw: torch.optim.SGD(params, lr=0.1, **hyper, **kw)}
    optimizers = {}
    for name in names:
        foreach = {"foreach": True} if name.endswith(" foreach") else {}
        optimizers[name] = build[name.removesuffix(" foreach")](params_for(name), **foreach)
    return optimizers


def step_path(name: str, params) -> str:
    """The path a side's step takes: ``foreach`` when asked, else torch.optim's default for ``params``
    (``_default_to_fused_or_foreach``, which all three peers follow when ``foreach`` is unset)."""
    from torch.optim.optimizer import _default_to_fused_or_foreach

    default = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)[1]
    return "foreach" if name.endswith(" foreach") or default else "single-tensor"


def optimizer_steps(*, reps: int, steps: int, warmup: int = 3, threads: int = 1) -> list[dict]:
    """Median step time (seconds) of each optimizer per repetition, sides alternating.

    Returns:
        One row per (repetition, optimizer): ``{"rep", "optimizer", "path", "step_s"}``; ``path`` is the
        step's path (:func:`step_path`).
    """
    import torch

    torch.set_num_threads(threads)
    copies = {name: resnet50_tensors() for name in OPTIMIZERS}
    optimizers = make_optimizers(copies.__getitem__)
    for opt in optimizers.values():
        for _ in range(warmup):
            opt.step()
    rows = []
    for rep in range(reps):
        order = OPTIMIZERS if rep % 2 == 0 else OPTIMIZERS[::-1]
        for name in order:
            times = time_calls(optimizers[name].step, steps)
            rows.append({"rep": rep, "optimizer": name, "path": step_path(name, copies[name]),
                         "step_s": statistics.median(times)})
    return rows


def throughput_runs(out: Path, *, reps: int, model: str, per_worker_batch: int, steps: int, warmup: int,
                    peers: str = "horovod,ddp,plain") -> list[dict]:
    """The throughput job with ``peers`` (``harness bench throughput --peers ...``) as k = 1 and 2 workers in
    each repetition (``python -m harness.runtime.worker`` under horovodrun); the summaries.

    Raises:
        RuntimeError: a run failed (its output is in ``out/rep<R>/k<k>.log``).
    """
    summaries = []
    for rep in range(reps):
        for k in ((1, 2) if rep % 2 == 0 else (2, 1)):
            run = out / f"rep{rep}" / f"k{k}"
            log = out / f"rep{rep}" / f"k{k}.log"
            run.parent.mkdir(parents=True, exist_ok=True)
            job = ThroughputJob(out=run, model=model, per_worker_batch=per_worker_batch, threads=1, steps=steps,
                                warmup_steps=warmup, batches_per_iter=min(10, steps), peers=tuple(peers.split(",")))
            argv = launch_command(worker_command(write_job(job, run / JOB)), launcher="horovodrun", np=k,
                                  hosts=f"localhost:{k}")
            with open(log, "w") as sink:
                proc = subprocess.run(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"repetition {rep}, k={k} failed (exit {proc.returncode}); see {log}")
            summaries.append({"rep": rep, "k": k, **json.loads((run / "summary.json").read_text())})
    return summaries


def spread(values) -> str:
    """``median (min–max)`` of a sequence, 3 significant decimals."""
    values = list(values)
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def comparisons(optimizer_rows: list[dict], summaries: list[dict]) -> list[dict]:
    """The table's rows: each ratio or efficiency with its per-repetition values.

    Returns:
        ``[{"comparison", "target", "values"}]``; ``values`` has one figure per repetition.
    """
    from benchmarks.peers import weak_scaling

    rows = []
    by_rep: dict[int, dict[str, float]] = {}
    for row in optimizer_rows:
        by_rep.setdefault(row["rep"], {})[row["optimizer"]] = row["step_s"]
    reps = list(by_rep.values())
    # SGD's floor (≤ 1.3) was set for the foreach paths; torch's single-tensor SGD makes no norm passes at all.
    for suffix, label, targets in (("", "defaults", ("≤ 1.0", "")), (" foreach", "foreach=True", ("≤ 1.0", "≤ 1.3"))):
        ours = f"harness LARS{suffix}"
        if not reps or not all(ours in r for r in reps):
            continue
        rows.append({"comparison": f"LARS step, ms (harness, {label})", "target": "",
                     "values": [1e3 * r[ours] for r in reps]})
        for peer, target in zip((f"timm Lars{suffix}", f"SGD{suffix}"), targets):
            if all(peer in r for r in reps):
                rows.append({"comparison": f"LARS step / {peer.removesuffix(suffix)}, {label}", "target": target,
                             "values": [r[ours] / r[peer] for r in reps]})
    runs: dict[int, dict[int, dict]] = {}
    for summary in summaries:
        runs.setdefault(summary["rep"], {})[summary["k"]] = summary
    pairs = [r for r in runs.values() if 1 in r and 2 in r]
    if pairs:
        rows.append({"comparison": "harness / bare Horovod, k = 1, images/s", "target": "≥ 0.98",
                     "values": [p[1]["ratio_to_horovod"] for p in pairs]})
        efficiency = [weak_scaling(p[1], p[2]) for p in pairs]
        for side in ("harness", "horovod", "ddp", "plain"):
            if all(side in e for e in efficiency):
                label = {"harness": "harness", "horovod": "bare Horovod", "ddp": "torch DDP (Gloo)",
                         "plain": "plain loop (no communication: the ceiling)"}[side]
                rows.append({"comparison": f"weak-scaling efficiency k = 1 → 2, {label}",
                             "target": "≥ DDP" if side == "harness" else "", "values": [e[side] for e in efficiency]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_peers", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="new directory for the runs and CSVs")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions of every comparison")
    parser.add_argument("--optimizer-steps", type=int, default=10, help="timed optimizer steps per side per rep")
    parser.add_argument("--model", default="resnet-small", help="model for the throughput comparisons")
    parser.add_argument("--per-worker-batch", type=int, default=32, help="n, images per rank per step")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per side per run")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps before each side")
    parser.add_argument("--skip", choices=("optimizer", "throughput"), action="append", default=[],
                        help="leave out a comparison")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"bench-peers: {args.out} already exists; choose a new --out", file=sys.stderr)
        return 2
    if args.reps < 1 or args.steps < 1 or args.optimizer_steps < 1:
        print("bench-peers: --reps, --steps and --optimizer-steps must be >= 1", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True)
    import pandas as pd
    from tabulate import tabulate

    start = time.perf_counter()
    optimizer_rows = [] if "optimizer" in args.skip else optimizer_steps(reps=args.reps, steps=args.optimizer_steps)
    if optimizer_rows:
        pd.DataFrame(optimizer_rows).to_csv(args.out / "optimizer_steps.csv", index=False)
    summaries = [] if "throughput" in args.skip else throughput_runs(
        args.out, reps=args.reps, model=args.model, per_worker_batch=args.per_worker_batch, steps=args.steps,
        warmup=args.warmup_steps)
    if summaries:
        flat = [{"rep": s["rep"], "k": s["k"], "harness": s["images_per_second"],
                 **{p: v["images_per_second"] for p, v in s.get("peers", {}).items()}} for s in summaries]
        pd.DataFrame(flat).to_csv(args.out / "throughput.csv", index=False)
    rows = comparisons(optimizer_rows, summaries)
    table = pd.DataFrame([{"comparison": r["comparison"], "median": statistics.median(r["values"]),
                           "min": min(r["values"]), "max": max(r["values"]), "target": r["target"],
                           "reps": len(r["values"])} for r in rows])
    table.to_csv(args.out / "bench_peers.csv", index=False)
    import torch

    _, timm_version = load_timm_lars() if optimizer_rows else (None, "not run")
    print(f"bench-peers: torch {torch.__version__}, timm {timm_version}, {args.reps} alternating repetitions, "
          f"1 thread per rank, {args.model} n={args.per_worker_batch} for the throughput rows")
    print(tabulate(table, headers="keys", tablefmt="github", showindex=False, floatfmt=".3f"))
    print(f"bench-peers took {time.perf_counter() - start:.0f} s; CSVs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
