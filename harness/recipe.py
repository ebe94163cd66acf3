"""The whole large-minibatch recipe in one validated dataclass, with the papers' presets.

A :class:`Recipe` fixes the global batch kn = world_size · per_worker_batch · accumulation_steps,
scales the reference LR to the peak LR for kn, and builds the per-iteration LR schedule:
optional warmup (gradual or constant) for ``warmup_epochs``, then a decay (none, multistep, poly,
cosine) over the remaining steps. Every field is checked on construction; a bad value raises
``ValueError`` naming the field and the value.

References:
    Goyal et al. 2017, arXiv 1706.02677 (linear scaling §2.1, warmup §2.2, momentum correction
    §2.3, ImageNet recipe §5.1). You, Gitman & Ginsburg 2017, arXiv 1708.03888 (LARS, poly(2)).
    MLPerf Training ResNet-50 reference, mlcommons/training ``image_classification/tensorflow2``
    (LARS, poly(2) to an end LR, label smoothing: :func:`mlperf_resnet50_lars`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from harness import schedules
from harness.lars import reference_epsilon
from harness.scaling import RULES, mlperf_lars_lr, scaled_lr

WARMUPS = ("none", "gradual", "constant")
DECAYS = ("none", "multistep", "poly", "cosine")
OPTIMIZERS = ("sgd", "lars")
IMAGENET_TRAIN_IMAGES = 1_281_167


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A large-minibatch training recipe.

    Attributes:
        name: a label for reports.
        reference_lr: η_ref, the LR tuned at ``reference_batch`` (Goyal: 0.1).
        reference_batch: B_ref (Goyal: 256).
        world_size: k, number of workers.
        per_worker_batch: n, images per worker per backward pass.
        accumulation_steps: backward passes summed per optimizer step (Goyal: equivalent to a
            larger k); kn counts them.
        dataset_size: training images per epoch.
        epochs: training length, in epochs (may be fractional).
        scaling_rule: ``linear``, ``sqrt`` or ``none`` (see :mod:`harness.scaling`).
        warmup: ``none``, ``gradual`` (linear per iteration) or ``constant`` (low LR, then jump).
        warmup_epochs: warmup length in epochs (Goyal: 5).
        warmup_start_lr: LR at step 0 of warmup; ``None`` means ``reference_lr`` (Goyal: from η
            to kη), or the peak LR when kn is below the reference batch and the peak is lower.
            For ``constant`` warmup it is the LR held during warmup.
        decay: ``none``, ``multistep``, ``poly`` or ``cosine``, applied after warmup.
        milestones_epochs: multistep decay epochs, counted from the start of training.
        decay_factor: multistep factor (Goyal: 0.1).
        poly_power: polynomial power (LARS: 2).
        end_lr: final LR of poly and cosine decay.
        decay_steps_offset: steps added to the decay length T = total − warmup steps of poly and
            cosine decay (MLPerf's ``lars_util.py``: 1, so the LR never reaches ``end_lr``).
        optimizer: ``sgd`` or ``lars``.
        momentum: m (0.9).
        weight_decay: β (Goyal: 1e-4).
        nesterov: Nesterov momentum.
        trust_coefficient: LARS η (You et al.: 0.001).
        lars_eps: ε in the LARS trust-ratio denominator.
        trust_clip: LARC clipping of the trust ratio at 1.
        momentum_correction: rescale v-form velocity by γ_{t+1}/γ_t (Goyal eq. 10).
        label_smoothing: ε_ls in [0, 1): the training loss's target is (1 − ε_ls)·one-hot + ε_ls/C
            (Szegedy et al. 2016, arXiv 1512.00567 §7; MLPerf: 0.1). Evaluation loss stays plain.
    """

    name: str = "custom"
    reference_lr: float = 0.1
    reference_batch: int = 256
    world_size: int = 1
    per_worker_batch: int = 32
    accumulation_steps: int = 1
    dataset_size: int = IMAGENET_TRAIN_IMAGES
    epochs: float = 90.0
    scaling_rule: str = "linear"
    warmup: str = "gradual"
    warmup_epochs: float = 5.0
    warmup_start_lr: float | None = None
    decay: str = "multistep"
    milestones_epochs: tuple[float, ...] = (30.0, 60.0, 80.0)
    decay_factor: float = 0.1
    poly_power: float = 2.0
    end_lr: float = 0.0
    decay_steps_offset: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    trust_coefficient: float = 0.001
    lars_eps: float = 0.0
    trust_clip: bool = False
    momentum_correction: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "milestones_epochs", tuple(self.milestones_epochs))
        _validate(self)

    # -- derived quantities -------------------------------------------------------------------
    @property
    def global_batch(self) -> int:
        """kn: images per optimizer step over all workers and accumulation steps."""
        return self.world_size * self.per_worker_batch * self.accumulation_steps

    @property
    def peak_lr(self) -> float:
        """The LR after warmup: ``scaled_lr(reference_lr, kn)`` (Goyal: 0.1·kn/256)."""
        return scaled_lr(self.reference_lr, self.global_batch, reference_batch=self.reference_batch,
                         rule=self.scaling_rule)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: ``dataset_size // kn`` (incomplete batches dropped)."""
        return schedules.steps_per_epoch(self.dataset_size, self.global_batch)

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the whole run: round(epochs · steps_per_epoch)."""
        return schedules.epochs_to_steps(self.epochs, self.steps_per_epoch)

    @property
    def warmup_steps(self) -> int:
        """Warmup length in optimizer steps (0 without warmup)."""
        return 0 if self.warmup == "none" else schedules.epochs_to_steps(self.warmup_epochs, self.steps_per_epoch)

    @property
    def decay_steps(self) -> int:
        """T of poly and cosine decay: total − warmup steps + ``decay_steps_offset`` (at least 1)."""
        return max(self.total_steps - self.warmup_steps, 1) + self.decay_steps_offset

    def schedule(self) -> schedules.Schedule:
        """The LR schedule ``f(step) -> lr`` (vectorised) described by this recipe.

        Built once per recipe (the recipe is immutable) and kept: the LR adapters call it every step.
        """
        built = self.__dict__.get("_schedule")
        if built is None:
            built = self._build_schedule()
            object.__setattr__(self, "_schedule", built)
        return built

    def __getstate__(self) -> dict:
        """Pickle the fields only (the kept schedule is a closure; it is rebuilt on first use)."""
        return {key: value for key, value in self.__dict__.items() if key != "_schedule"}

    def _build_schedule(self) -> schedules.Schedule:
        peak, warm = self.peak_lr, self.warmup_steps
        spe = self.steps_per_epoch
        if self.decay == "multistep":
            marks = [schedules.epochs_to_steps(e, spe) - warm for e in self.milestones_epochs]
            main = schedules.multistep(peak, marks, self.decay_factor)
        elif self.decay == "poly":
            main = schedules.polynomial(peak, self.decay_steps, power=self.poly_power, end_lr=self.end_lr)
        elif self.decay == "cosine":
            main = schedules.cosine(peak, self.decay_steps, end_lr=self.end_lr)
        else:
            main = schedules.constant(peak)
        if warm == 0:
            return main
        start = min(self.reference_lr, peak) if self.warmup_start_lr is None else self.warmup_start_lr
        first = (schedules.linear_warmup(start, peak, warm) if self.warmup == "gradual"
                 else schedules.constant(start))
        return schedules.join([first, main], [warm])

    def lr(self, step):
        """The LR at ``step`` (an int or an integer array): a float or a float64 array."""
        return self.schedule()(step)

    def multiplier(self, step):
        """``lr(step) / peak_lr``: the factor a framework adapter applies to each base LR.

        Equals ``lr(step)`` for an optimizer whose LR is ``peak_lr``, and keeps the ratios of
        param groups with other base LRs (detectron2's ``LRMultiplier``).

        Args:
            step: an int or an integer array.

        Returns:
            A float or a float64 array.
        """
        return self.lr(step) / self.peak_lr

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain dict of every field (tuples become lists), JSON- and YAML-safe."""
        out = dataclasses.asdict(self)
        out["milestones_epochs"] = list(self.milestones_epochs)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"a recipe must be a mapping of field names to values, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown recipe field(s): {', '.join(map(str, unknown))}")
        return cls(**data)

    def replace(self, **changes) -> Recipe:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """Parse JSON text; malformed JSON raises ``ValueError``."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe is not valid JSON: {exc}") from None

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict` (needs PyYAML, imported here only)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        """Parse YAML text (needs PyYAML); malformed YAML raises ``ValueError``."""
        import yaml

        try:
            return cls.from_dict(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise ValueError(f"recipe is not valid YAML: {str(exc).splitlines()[0]}") from None

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Read a ``.json``, ``.yaml`` or ``.yml`` recipe file.

        Raises:
            ValueError: unknown extension, malformed content or an invalid field.
            OSError: the file cannot be read.
        """
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return cls.from_json(text)
        if path.suffix in (".yaml", ".yml"):
            return cls.from_yaml(text)
        raise ValueError(f"recipe file must end in .json, .yaml or .yml, got {path.name!r}")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _check(ok: bool, field: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"Recipe.{field} must be {expected}, got {value!r}")


def _validate(r: Recipe) -> None:
    _check(isinstance(r.name, str) and r.name != "", "name", r.name, "a non-empty string")
    for field in ("reference_batch", "world_size", "per_worker_batch", "accumulation_steps", "dataset_size"):
        _check(_is_int(getattr(r, field), 1), field, getattr(r, field), "an integer >= 1")
    for field in ("reference_lr", "epochs", "trust_coefficient"):
        _check(_is_real(getattr(r, field)) and getattr(r, field) > 0, field, getattr(r, field), "a finite number > 0")
    for field in ("warmup_epochs", "end_lr", "weight_decay", "lars_eps"):
        _check(_is_real(getattr(r, field)) and getattr(r, field) >= 0, field, getattr(r, field), "a finite number >= 0")
    _check(r.warmup_start_lr is None or (_is_real(r.warmup_start_lr) and r.warmup_start_lr >= 0),
           "warmup_start_lr", r.warmup_start_lr, "null or a finite number >= 0")
    _check(_is_real(r.momentum) and 0 <= r.momentum < 1, "momentum", r.momentum, "in [0, 1)")
    _check(_is_real(r.decay_factor) and 0 < r.decay_factor <= 1, "decay_factor", r.decay_factor, "in (0, 1]")
    _check(_is_real(r.poly_power) and r.poly_power > 0, "poly_power", r.poly_power, "a finite number > 0")
    _check(_is_int(r.decay_steps_offset, 0), "decay_steps_offset", r.decay_steps_offset, "an integer >= 0")
    _check(_is_real(r.label_smoothing) and 0 <= r.label_smoothing < 1, "label_smoothing", r.label_smoothing,
           "in [0, 1)")
    for field, choices in (("scaling_rule", RULES), ("warmup", WARMUPS), ("decay", DECAYS), ("optimizer", OPTIMIZERS)):
        _check(getattr(r, field) in choices, field, getattr(r, field), "one of " + ", ".join(choices))
    for field in ("nesterov", "trust_clip", "momentum_correction"):
        _check(isinstance(getattr(r, field), bool), field, getattr(r, field), "true or false")
    _check(r.dataset_size >= r.global_batch, "dataset_size", r.dataset_size,
           f">= the global batch kn = {r.global_batch}")
    _check(r.warmup == "none" or r.warmup_epochs < r.epochs, "warmup_epochs", r.warmup_epochs,
           f"< epochs ({r.epochs})")
    _check(r.warmup == "none" or r.warmup_steps >= 1, "warmup_epochs", r.warmup_epochs,
           f"long enough for one step ({r.steps_per_epoch} steps per epoch)")
    marks = r.milestones_epochs
    _check(all(_is_real(m) for m in marks) and all(b > a for a, b in zip(marks, marks[1:])),
           "milestones_epochs", list(marks), "strictly increasing numbers")
    if r.decay == "multistep":
        low = r.warmup_epochs if r.warmup != "none" else 0
        _check(len(marks) > 0 and all(low < m < r.epochs for m in marks), "milestones_epochs", list(marks),
               f"non-empty and inside ({low}, {r.epochs}): after warmup, before the end")
        # Milestones that round to the same step would silently merge two drops.
        steps = [schedules.epochs_to_steps(m, r.steps_per_epoch) for m in marks]
        _check(len(set(steps)) == len(steps) and steps[0] > r.warmup_steps, "milestones_epochs", list(marks),
               "at distinct steps after warmup")


def goyal2017_resnet50(global_batch: int = 8192, *, per_worker_batch: int = 32) -> Recipe:
    """Goyal et al. 2017 ResNet-50 on ImageNet-1k (arXiv 1706.02677, §5.1 and Table 1).

    η = 0.1·kn/256 (3.2 at kn = 8192), gradual warmup from 0.1 over 5 epochs, ÷10 at epochs 30,
    60 and 80 of 90, momentum 0.9, weight decay 1e-4, n = 32 images per GPU (k = 256 at 8k),
    1,281,167 training images, momentum correction on.

    Raises:
        ValueError: if ``global_batch`` is not a positive multiple of ``per_worker_batch``.
    """
    if not _is_int(global_batch, 1) or global_batch % per_worker_batch:
        raise ValueError(f"global_batch must be a positive multiple of {per_worker_batch}, got {global_batch!r}")
    return Recipe(name=f"goyal2017-resnet50-{global_batch}", world_size=global_batch // per_worker_batch,
                  per_worker_batch=per_worker_batch)


def you2017_lars_resnet50(global_batch: int = 32768, *, per_worker_batch: int = 32) -> Recipe:
    """LARS ResNet-50 on ImageNet-1k after You, Gitman & Ginsburg 2017 (arXiv 1708.03888).

    From the paper: LARS with trust coefficient η = 0.001 (§4), polynomial decay of power 2 and
    a warmup (§5, Algorithm 1). The remaining values are this project's defaults, stated here
    so the preset is explicit rather than quoted: reference LR 0.1 per 256 scaled linearly
    (12.8 at 32K), gradual warmup over 5 epochs from 0.1, 90 epochs, momentum 0.9, weight
    decay 5e-4 (the paper's AlexNet setting), momentum correction on (LARS is a v-form update).

    Raises:
        ValueError: if ``global_batch`` is not a positive multiple of ``per_worker_batch``.
    """
    base = goyal2017_resnet50(global_batch, per_worker_batch=per_worker_batch)
    return base.replace(name=f"you2017-lars-resnet50-{global_batch}", optimizer="lars", decay="poly",
                        poly_power=2.0, weight_decay=5e-4, trust_coefficient=0.001)


def fashion_mnist_goyal(global_batch: int = 128, *, per_worker_batch: int = 128) -> Recipe:
    """Goyal et al.'s recipe shrunk to Fashion-MNIST for ``make demo`` (4 epochs on 2 cores).

    The reference LR 0.1 is tuned at the one-worker batch (128) and scaled linearly with k;
    gradual warmup over 1 epoch from 0.1; ÷10 at epoch 3 of 4; momentum 0.9; weight decay 5e-4;
    60,000 training images.

    Raises:
        ValueError: if ``global_batch`` is not a positive multiple of ``per_worker_batch``.
    """
    if not _is_int(global_batch, 1) or global_batch % per_worker_batch:
        raise ValueError(f"global_batch must be a positive multiple of {per_worker_batch}, got {global_batch!r}")
    return Recipe(name="fashion-mnist-goyal", reference_lr=0.1, reference_batch=128,
                  world_size=global_batch // per_worker_batch, per_worker_batch=per_worker_batch,
                  dataset_size=60_000, epochs=4.0, warmup_epochs=1.0, milestones_epochs=(3.0,),
                  weight_decay=5e-4)


def mlperf_resnet50_lars(global_batch: int = 4096, *, per_worker_batch: int = 64) -> Recipe:
    """The MLPerf Training ResNet-50 reference's LARS recipe (mlcommons/training, v1.0 TF2 reference).

    Every value, with the file of ``mlcommons/training`` it comes from (``image_classification/``
    omitted; ``README`` is ``README_tensorflow2.md``, whose TPU-v3-64 run is the one at kn = 4096):

    ==========================  ==================  ==================================================
    field                       value               source
    ==========================  ==================  ==================================================
    optimizer                   ``lars``            README ``--optimizer=LARS``
    peak LR, warmup_epochs      10.0, 5 (kn<16384)  ``tensorflow2/lars_util.py``
                                25.0, 5 (<32768)    ``PolynomialDecayWithWarmup`` table
                                31.2, 25 (above)    (:func:`harness.scaling.mlperf_lars_lr`); README
                                                    passes the same 10.0 and 5 at kn = 4096
    scaling_rule                ``none``            ``lars_util.py``: the LR is the table's, unscaled
    warmup, warmup_start_lr     gradual, 0.0        ``lars_util.py``: ``init · step / warmup_steps``
    decay, poly_power           ``poly``, 2         ``lars_util.py``: ``PolynomialDecay(power=2.0)``
    end_lr                      1e-4                ``lars_util.py``: ``end_learning_rate`` default
    decay_steps_offset          1                   ``lars_util.py``: ``train_steps − warmup_steps + 1``
    trust_coefficient           0.001               ``tensorflow2/lars_optimizer.py``: ``eeta`` default
                                                    (``common.py`` passes none)
    lars_eps                    1e-7                README ``--lars_epsilon=0``; ``lars_optimizer.py``:
                                                    ``epsilon or backend_config.epsilon()``
    momentum                    0.9                 README ``--momentum=0.9``
    weight_decay                2e-4                README ``--weight_decay=0.0002``
    nesterov, trust_clip        false, false        ``lars_optimizer.py`` (``use_nesterov=False``; no clip)
    momentum_correction         false               ``lars_optimizer.py``: ``mom = m·mom − lr·λ·d``,
                                                    no rescaling (NVIDIA's submissions add it)
    label_smoothing             0.1                 README ``--label_smoothing=0.1``;
                                                    ``resnet_runnable.py``: ``categorical_crossentropy``
    epochs                      42                  README ``--train_epochs=42`` (kn = 4096)
    per_worker_batch            64                  README: ``--batch_size=4096``, ``--num_replicas=64``
    dataset_size                1,281,167           ``tensorflow2/imagenet_preprocessing.py``
                                                    ``NUM_IMAGES['train']``; ``common.py`` drops the
                                                    remainder (``steps_per_epoch = N // kn``)
    ==========================  ==================  ==================================================

    Not fields: the reference's skip list ``['batch_normalization', 'bias', 'bn']``
    (``common.py``, ``get_optimizer``) takes BN and bias variables out of both the trust ratio and
    weight decay, which is the backends' default :func:`~backends.torch.bias_and_norm` rule (ndim <= 1)
    for ResNet-50; the loss is ``sum(CE) / global batch`` (``resnet_runnable.py``), the engines'
    mean over kn.

    Args:
        global_batch: kn; picks the LR and warmup row of the table.
        per_worker_batch: n (k = kn / n workers).

    Raises:
        ValueError: if ``global_batch`` is not a positive multiple of ``per_worker_batch``.
    """
    if not _is_int(global_batch, 1) or global_batch % per_worker_batch:
        raise ValueError(f"global_batch must be a positive multiple of {per_worker_batch}, got {global_batch!r}")
    peak, warmup_epochs = mlperf_lars_lr(global_batch)
    return Recipe(name=f"mlperf-resnet50-lars-{global_batch}", reference_lr=peak, reference_batch=global_batch,
                  world_size=global_batch // per_worker_batch, per_worker_batch=per_worker_batch,
                  dataset_size=IMAGENET_TRAIN_IMAGES, epochs=42.0, scaling_rule="none", warmup="gradual",
                  warmup_epochs=warmup_epochs, warmup_start_lr=0.0, decay="poly", poly_power=2.0, end_lr=1e-4,
                  decay_steps_offset=1, optimizer="lars", momentum=0.9, weight_decay=2e-4, nesterov=False,
                  trust_coefficient=0.001, lars_eps=reference_epsilon(0.0), trust_clip=False,
                  momentum_correction=False, label_smoothing=0.1)


PRESETS = {
    "goyal2017-resnet50": goyal2017_resnet50,
    "you2017-lars-resnet50": you2017_lars_resnet50,
    "fashion-mnist-goyal": fashion_mnist_goyal,
    "mlperf-resnet50-lars": mlperf_resnet50_lars,
}
