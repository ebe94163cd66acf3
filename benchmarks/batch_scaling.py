"""Accuracy at large batch, with confidence intervals: ``harness experiment batch-scaling`` on Fashion-MNIST.

The question (Goyal et al. 2017, Figure 1 and Table 1; You et al. 2017; the MLPerf ResNet-50 reference):
trained for the same number of epochs, how does test error grow with the global batch, up to which
multiple of the base batch does it stay flat (the knee), does LARS move the knee to larger batches, and
what do the methods that are *not* the recipe lose? The grid measures the curve, error against global
batch at 1x, 4x, 8x, 16x, 32x and 64x of the base, for the two recipes (:data:`CURVE_METHODS`), and the
controls where they matter (:data:`CONTROLS`); :func:`benchmarks.batch_scaling_report.knee` reads each
curve's knee off the summary and :func:`~benchmarks.batch_scaling_report.claims` the papers' four
comparative claims, each with its paired 95% interval.

Methods (every one trains the same epochs; only the LR rule and the optimizer change):

===================  ========================================================================================
``no-scaling``       the base LR at every batch: the control, which must lose accuracy
``linear``           linear scaling η = η0·kn/b0, no warmup
``linear-gradual``   linear scaling, gradual warmup per iteration from η0 (Goyal §2.2)
``linear-constant``  linear scaling, η0 held through warmup, then the jump (Goyal §2.2, Fig. 2)
``lars``             LARS (trust coefficient 0.02), linear-scaled global LR, gradual warmup from 0, poly(2) to 0
``mlperf-lars``      the MLPerf reference LARS preset (:func:`harness.recipe.mlperf_resnet50_lars`) scaled to
                     this data: every value of the preset except those below
===================  ========================================================================================

``mlperf-lars`` scaled to this data: the table's LR and warmup are read at the ImageNet batch with the
same multiple of Goyal's 256 (32× → 8192 → LR 10; 64× → 16384 → LR 25,
:func:`~harness.scaling.mlperf_lars_lr`); the warmup keeps the reference's fraction of training (5 of 42
epochs); epochs, data and batch are the grid's. Trust coefficient 0.001, ε = 1e-7, weight decay 2e-4,
poly(2) to 1e-4 over T + 1 steps, label smoothing 0.1 and no momentum correction stay the reference's.
``linear`` and ``mlperf-lars`` are not in the default grid (``--complete`` runs every method at every
multiple, ``--methods`` picks).

Design, and why (every number is a :class:`Grid` field; ``--epochs``/``--seeds`` change them). Per-run
costs below were measured on the project's 2-core machine (AMD EPYC, one thread a run, machine otherwise
idle); the grid's own wall time is in its ``grid.json`` and in docs/results.md.

* **The curve, ≥ 5 seeds, in an hour of 2 cores.** 5 seeds × (1 base + 2 curve methods at 5 multiples + 3
  controls) = 70 runs, two single-thread runs at a time. Per-run costs measured for the earlier
  two-multiple grid (2026-12-04, two runs at a time, nothing else running): base runs 152-165 s, 32× and
  64× runs 69-89 s; 4× trains in passes of 128 (a little slower than 256). Estimate: 5 × 160 s + 65 × ~85 s
  ≈ 6,300 core-seconds, about 53 minutes on two cores; the measured time goes in ``grid.json``. 128×
  (kn = 4096, 117 steps in 8 epochs) would add 10 runs (~7 minutes) and is left out of the default.
* **The model.** The project's ``resnet-small`` trains an epoch in 25.7 s at b0 (2,332 images/s) and
  17.7 s in passes of 256 (3,396 images/s): 5 seeds would leave 3-4 epochs a run. The same network at half width (:data:`WIDTHS`, 19,810
  parameters, zero-γ residual blocks as in Goyal §5.1) costs half as much.
* **Sensitive, with a well-trained base.** Probes at b0 = 32 (one seed each): 8 epochs reached 91.04% at
  η0 = 0.025 and 91.25% at η0 = 0.05; 7 epochs at η0 = 0.05 reached 90.81% and 90.47% (seeds 0, 1),
  below the 91% the design asks for, and no LR scaling at 32× there lost only 3.2 points. At η0 = 0.025
  and 10 epochs no scaling at 32× lost 3.9 and 4.8 points (two probes): the smaller base LR keeps the control's loss
  clear of 3 points, and 8 epochs keep the base at 91%. Plain two-layer CNNs of the same cost reached
  91.2% at the base but lost only 1.3-1.6 points at 32× without scaling: a grid that cannot show the
  batch effect cannot show the recipe removing it. The summary gives the base's accuracy; claim 4 (no
  LR scaling loses ≥ 3 points at 32×) checks the control with its interval.
* **Long enough at the large batches.** 8 epochs are 3,744 steps at 4×, 1,872 at 8×, 936 at 16×, 464 at
  32× (kn = 1024) and 232 at 64× (kn = 2048), with 1 warmup epoch (12.5% of training: MLPerf's 5 of 42
  epochs is 12%, Goyal's 5 of 90 is 6%). The steps of every configuration are a column of the summary;
  ``--epochs 16`` doubles them and the time. These are far fewer steps than the papers' (Goyal's 8k run:
  156 × 90 ≈ 14,000; the MLPerf preset at kn = 4096: 312 × 42 ≈ 13,100), the price of five seeds on two
  cores; at this scale the knee sits at a smaller multiple than on ImageNet, and where it sits is the
  finding.
* **The knee and the claims are read, not chosen.** The knee of a method is the largest multiple whose gap
  to the base has the upper end of its paired 95% interval at most 0.5 points
  (:func:`~benchmarks.batch_scaling_report.knee`). The claims are fixed before the run: linear + gradual
  warmup flat to at least 8×; LARS's knee above it and LARS better at the largest multiple; gradual above
  constant warmup at 32× (Goyal's 8k); no LR scaling losing ≥ 3 points at 32×. A claim the data does not
  support is reported as not supported, with its numbers.
* **Same epochs, one schedule family per optimizer.** SGD methods divide the LR by 10 at 75% of
  training; the LARS methods use poly(2), as their papers do.
* **Paired by seed.** Seed s fixes the initial weights and the shuffling of every configuration;
  the gap of a method to the base is computed seed by seed (base_s − method_s), and its 95% interval
  is the t interval of those paired differences
  (:func:`benchmarks.batch_scaling_report.paired_interval`), which removes the seed-to-seed variation
  the two runs share. The comparisons between methods (LARS against linear + gradual, gradual against
  constant warmup) are paired the same way.

A global batch kn = multiple · b0 is reached in one process by gradient accumulation in passes of up to
``micro_batch`` images (Goyal §2: k workers of n ≡ one worker accumulating k passes of n, up to BatchNorm
statistics, which are per pass here as per worker there), or with ``--workers`` Horovod workers. Every
run is a real training run directory: the experiment writes each run's :class:`~harness.runtime.worker.TrainJob`
to ``runs/<name>/job.json``, runs ``python -m harness.runtime.worker`` on it (under horovodrun for
``workers`` > 1), and tabulates.

References:
    Goyal et al. 2017, arXiv 1706.02677. You, Gitman & Ginsburg 2017, arXiv 1708.03888. MLPerf Training
    ResNet-50 reference, mlcommons/training ``image_classification/tensorflow2``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.recipe import mlperf_resnet50_lars
from harness.runtime.config import DataConfig, RecipeSpec, RunConfig
from harness.runtime.errors import ConfigError
from harness.runtime.launch import launch_command
from harness.runtime.records import JOB
from harness.runtime.worker import TrainJob, worker_command, write_job
from harness.scaling import mlperf_lars_lr

METHODS = ("no-scaling", "linear", "linear-gradual", "linear-constant", "lars", "mlperf-lars")
SGD_METHODS = METHODS[:4]
BASE_METHOD = "linear-gradual"  # at multiple 1 the four SGD methods are one run: reported for each of them
GOYAL_BATCH = 256  # the ImageNet batch Goyal et al.'s LR is tuned at: maps a multiple to the MLPerf table
CURVE_METHODS = ("linear-gradual", "lars")  # run at every multiple: the curves and their knees
# The controls, where they matter: no LR scaling at 32x (the control must be sensitive); constant warmup at
# 32x (Goyal's 8k is 32x their 256: Table 1, 23.74% vs 25.88% top-1 error) and 64x.
CONTROLS = (("no-scaling", 32), ("linear-constant", 32), ("linear-constant", 64))


@dataclasses.dataclass(frozen=True)
class Grid:
    """What to run.

    Attributes:
        base_batch: b0, images per step at the base (multiple 1).
        multiples: global batch multiples of b0 (1 must be first); every multiple above 1 runs the
            :data:`CURVE_METHODS`.
        controls: (method, multiple) pairs run besides the curves (:data:`CONTROLS`); pairs at a multiple
            the grid does not have are left out.
        base_lr: η0, the LR tuned at b0.
        epochs: training epochs of every run.
        warmup_epochs: warmup length of the SGD warmup methods and of ``lars``.
        milestones: SGD methods' ÷10 epochs.
        seeds: seeds per configuration (paired across configurations).
        micro_batch: largest per-pass batch in accumulation mode (BN sees this many images).
        trust_coefficient: ``lars``'s η (the paper's 0.001 left the small ResNet at 85% at 64×).
        weight_decay: β of the five project methods (``mlperf-lars`` keeps the reference's 2e-4).
        model: ``resnet-small-w8`` (this module's :func:`torch_model`/:func:`keras_model`) or a
            ``harness train`` model.
        complete: run every method at every multiple.
        train_size, test_size: data subset sizes (None: all; the grid's results use all).
    """

    base_batch: int = 32
    multiples: tuple[int, ...] = (1, 4, 8, 16, 32, 64)
    controls: tuple[tuple[str, int], ...] = CONTROLS
    base_lr: float = 0.025
    epochs: float = 8.0
    warmup_epochs: float = 1.0
    milestones: tuple[float, ...] = (6.0,)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    micro_batch: int = 256
    trust_coefficient: float = 0.02
    weight_decay: float = 5e-4
    model: str = "resnet-small-w8"
    complete: bool = False
    train_size: int | None = None
    test_size: int | None = None


FULL = Grid()
QUICK = Grid(multiples=(1, 4, 8), controls=tuple((m, 8) for m in METHODS if m not in CURVE_METHODS), epochs=2.0,
             warmup_epochs=0.5, milestones=(1.5,), seeds=(0, 1), train_size=4096, test_size=2000)


def with_epochs(grid: Grid, epochs: float) -> Grid:
    """``grid`` trained for ``epochs``, the SGD methods' ÷10 at 75% of training.

    Raises:
        ValueError: if the drop would not come after warmup.
    """
    if not epochs * 0.75 > grid.warmup_epochs:
        raise ValueError(f"epochs must put the LR drop (75% of training) after {grid.warmup_epochs:g} epoch(s) "
                         f"of warmup, got {epochs:g}")
    return dataclasses.replace(grid, epochs=float(epochs), milestones=(0.75 * epochs,))


def mlperf_overrides(grid: Grid, multiple: int) -> dict:
    """Recipe fields that scale the ``mlperf-resnet50-lars`` preset to this data at ``multiple``."""
    preset = mlperf_resnet50_lars()
    peak, warmup_epochs = mlperf_lars_lr(multiple * GOYAL_BATCH)
    return {"reference_lr": peak, "reference_batch": multiple * grid.base_batch,
            "warmup_epochs": warmup_epochs / preset.epochs * grid.epochs}


def method_overrides(method: str, grid: Grid, multiple: int = 1) -> dict:
    """Recipe fields (name → typed value) that turn the method's base preset into ``method`` at ``multiple``.

    Raises:
        ValueError: unknown method.
    """
    sgd = {"decay": "multistep", "milestones_epochs": list(grid.milestones)}
    warm = {"warmup_epochs": grid.warmup_epochs}
    table = {
        "no-scaling": {"scaling_rule": "none", "warmup": "none", **sgd},
        "linear": {"scaling_rule": "linear", "warmup": "none", **sgd},
        "linear-gradual": {"scaling_rule": "linear", "warmup": "gradual", **warm, **sgd},
        "linear-constant": {"scaling_rule": "linear", "warmup": "constant", **warm, **sgd},
        "lars": {"scaling_rule": "linear", "warmup": "gradual", **warm, "optimizer": "lars", "decay": "poly",
                 "poly_power": 2, "trust_coefficient": grid.trust_coefficient, "warmup_start_lr": 0.0},
    }
    if method == "mlperf-lars":
        return mlperf_overrides(grid, multiple)
    if method not in table:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return {"reference_lr": grid.base_lr, "reference_batch": grid.base_batch, "weight_decay": grid.weight_decay,
            **table[method]}


def configurations(grid: Grid, methods=METHODS) -> list[dict]:
    """Every (multiple, method, seed) to train. At multiple 1 only the base runs: the SGD methods coincide
    there (scale 1, warmup from η0 to itself), so one ``linear-gradual`` run stands for all four; the
    LARS methods are compared with it, not with themselves. Above 1: the :data:`CURVE_METHODS` at every
    multiple, and ``grid.controls`` where their multiple is in the grid (every method with
    ``grid.complete``); only the ``methods`` asked for."""
    runs = []
    for multiple in grid.multiples:
        if multiple == 1:
            chosen = [BASE_METHOD]
        else:
            chosen = [m for m in methods if grid.complete or m in CURVE_METHODS or (m, multiple) in grid.controls]
        runs += [{"multiple": multiple, "method": m, "seed": s} for m in chosen for s in grid.seeds]
    return runs


def model_spec(grid: Grid, backend: str) -> str:
    """The run's ``model``: this module's builder for ``backend``, or the grid's model name."""
    if grid.model != "resnet-small-w8":
        return grid.model
    return f"benchmarks.batch_scaling:{backend}_model"


def train_job(config: dict, grid: Grid, out: Path, *, backend: str, workers: int,
              overwrite: bool = False) -> TrainJob:
    """The training job of one configuration on ``workers`` ranks, writing its run directory ``out``."""
    global_batch = config["multiple"] * grid.base_batch
    per_pass = min(global_batch // workers, grid.micro_batch)
    accumulation = global_batch // (workers * per_pass)
    preset = "mlperf-resnet50-lars" if config["method"] == "mlperf-lars" else "fashion-mnist-goyal"
    changes = {"per_worker_batch": per_pass, "epochs": float(grid.epochs), "accumulation_steps": accumulation,
               **method_overrides(config["method"], grid, config["multiple"])}
    run = RunConfig(out=out, backend=backend, model=model_spec(grid, backend), seed=config["seed"], threads=1,
                    timing_skip=0, overwrite=overwrite,
                    data=DataConfig(train_size=grid.train_size or None, test_size=grid.test_size or None))
    return TrainJob(config=run, recipe=RecipeSpec(preset=preset, changes=changes))


def train_command(config: dict, grid: Grid, out: Path, *, backend: str, workers: int,
                  overwrite: bool = False) -> list[str]:
    """Write one configuration's job to ``out/job.json``; the worker command that runs it (under horovodrun
    when workers > 1)."""
    job = train_job(config, grid, out, backend=backend, workers=workers, overwrite=overwrite)
    argv = worker_command(write_job(job, out / JOB))
    if workers == 1:
        return argv
    return launch_command(argv, launcher="horovodrun", np=workers, hosts=f"localhost:{workers}")


def run_name(config: dict) -> str:
    """Run directory name, e.g. ``x32-linear-gradual-s0``."""
    return f"x{config['multiple']}-{config['method']}-s{config['seed']}"


def run_grid(grid: Grid, out: Path, *, backend: str = "torch", workers: int = 1, jobs: int = 2,
             methods=METHODS, overwrite: bool = False, log=print) -> list[dict]:
    """Train every configuration (``jobs`` at a time), return one result row per run.

    Raises:
        RuntimeError: naming the configuration whose training failed (its log is kept).
    """
    configs = configurations(grid, methods)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    def one(config: dict) -> dict:
        run_dir = out / "runs" / run_name(config)
        started = time.perf_counter()
        with open(out / "runs" / f"{run_name(config)}.log", "w") as logfile:
            code = subprocess.run(train_command(config, grid, run_dir, backend=backend, workers=workers,
                                                overwrite=overwrite),
                                  stdout=logfile, stderr=subprocess.STDOUT).returncode
        if code != 0 or not (run_dir / "summary.json").exists():
            raise RuntimeError(f"{run_name(config)} failed (exit {code}); see {run_dir}.log")
        summary = json.loads((run_dir / "summary.json").read_text())
        row = {**config, "global_batch": summary["global_batch"], "test_accuracy": summary["test_accuracy"],
               "epochs": summary["epochs"], "steps": summary["steps"], "peak_lr": summary["peak_lr"],
               "wall_s": time.perf_counter() - started, "run_dir": str(Path("runs") / run_name(config)),
               "accumulation_steps": summary["accumulation_steps"], "world_size": summary["world_size"]}
        log(f"  {run_name(config):28s} kn={row['global_batch']:5d}  test accuracy {row['test_accuracy']:.4f}  "
            f"({row['wall_s']:.0f} s)")
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, configs))


# -- command line support --------------------------------------------------------------------------------
def configure(*, quick: bool, seeds: int | None, epochs: float | None, workers: int,
              methods: list[str] | None, complete: bool = False) -> tuple[Grid, tuple[str, ...]]:
    """The grid and methods a command line asks for.

    Raises:
        ConfigError: seeds < 1, epochs the grid cannot hold, workers that do not divide every global
            batch, or unknown methods.
    """
    grid = dataclasses.replace(QUICK if quick else FULL, complete=complete)
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {seeds}", fields=("seeds",))
        grid = dataclasses.replace(grid, seeds=tuple(range(seeds)))
    if epochs is not None:
        try:
            grid = with_epochs(grid, epochs)
        except ValueError as exc:
            raise ConfigError(str(exc), fields=("epochs",)) from None
    if workers < 1 or (workers > 1 and any(m * grid.base_batch % workers for m in grid.multiples)):
        raise ConfigError(f"workers must be >= 1 and divide every global batch, got {workers}", fields=("workers",))
    methods = tuple(methods or METHODS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"methods: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}",
                          fields=("methods",))
    return grid, methods


def mode_text(grid: Grid, workers: int) -> str:
    """How each run reaches its global batch, for the table's header."""
    if workers > 1:
        return f"{workers} Horovod workers (horovodrun), gradient accumulation above n = {grid.micro_batch}"
    return f"one process, gradient accumulation in passes of up to {grid.micro_batch} images"


# -- the model -------------------------------------------------------------------------------------------
WIDTHS = (8, 16, 32)
"""Channel widths of the grid's model: the project's ``resnet-small`` at half width (19,810 parameters)."""


def torch_model(input_shape, num_classes: int):
    """``harness train --model benchmarks.batch_scaling:torch_model``: ``resnet-small`` with :data:`WIDTHS`
    (a strided stem and three BasicBlocks, each with a zero-γ last BN): (N, C, 28, 28) → (N, num_classes)."""
    from backends.torch.models import resnet_small

    return resnet_small(input_shape[0], num_classes, WIDTHS)


def keras_model(input_shape, num_classes: int):
    """:func:`torch_model` for ``--backend keras``: (N, 28, 28, C) → (N, num_classes)."""
    from backends.keras.models import resnet_small

    return resnet_small(tuple(input_shape), num_classes, WIDTHS)
