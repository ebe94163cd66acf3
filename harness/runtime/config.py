"""Typed run configuration: what ``harness train`` (or a script) asks the runtime to do.

The CLI turns flags into a :class:`RunConfig` and a :class:`RecipeSpec`; the runtime never sees an
``argparse.Namespace``. Validation happens here, once, with one-line :class:`ConfigError` messages that
name the field (``threads must be >= 1, got 0``); the CLI writes the field as its flag.

Every config is JSON data too (:func:`to_dict`, :func:`from_dict`): a launched worker reads its job
from a file (:mod:`harness.runtime.worker`), and ``dataclasses.replace`` and a round trip keep it typed.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from harness.recipe import PRESETS, Recipe
from harness.runtime.errors import ConfigError

NONFINITE_POLICIES = ("stop", "skip")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data to train on.

    Attributes:
        source: ``"fashion-mnist"``, ``"synthetic"``, a path to an ``.npz`` file with arrays
            ``x_train, y_train, x_test, y_test`` (:func:`harness.datasets.load_npz`), an image folder
            (``DIR/train/<class>/<image>``, ``DIR/val/...``) or a tar shard pattern
            (``PATH/train-{000000..000099}.tar``; :mod:`harness.runtime.images`).
        data_dir: directory of the Fashion-MNIST IDX files (None: the Debian package's).
        layout: ``"NCHW"`` or ``"NHWC"``: the image layout of an ``.npz`` file's arrays.
        train_size: use the first N training images (None: all); of an image folder or shards, N
            evenly spaced ones.
        test_size: evaluate on the first N test images (None: all); evenly spaced ones of images.
        image_size: images: S, the side of the square the network sees.
        data_workers: images: decode processes per rank (None: the rank's share of its host's CPUs
            minus its compute threads, or minus one when it computes on a GPU; at least 1; 0: decode
            in the rank itself; :func:`harness.runtime.pipeline.default_data_workers`).
        bad_images: images: ``"stop"`` at an undecodable image (naming it) or ``"skip"`` it and count it.
        min_crop_area: images: the smallest random-resized-crop window, a fraction of the image's area.
        eval_crop_fraction: images: the evaluation centre crop's side over the short side.
        flip: images: random horizontal flips in training (p = 0.5).
        jpeg_decoder: images: ``"window"`` (decode only the crop's window, libjpeg-turbo's region and
            scaled decode, then Pillow's antialiased resampling re-done in C: :mod:`harness.runtime.jpeg`) or ``"pillow"``
            (Pillow's full decode and antialiased resize, as torchvision). PNGs are always Pillow's.
    """

    source: str = "fashion-mnist"
    data_dir: str | None = None
    layout: str = "NCHW"
    train_size: int | None = None
    test_size: int | None = None
    image_size: int = 224
    data_workers: int | None = None
    bad_images: str = "stop"
    min_crop_area: float = 0.08
    eval_crop_fraction: float = 0.875
    flip: bool = True
    jpeg_decoder: str = "window"

    def __post_init__(self):
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"data.layout must be NCHW or NHWC, got {self.layout!r}", fields=("data.layout",))
        for name in ("train_size", "test_size", "image_size"):
            check_at_least(f"data.{name}", getattr(self, name), 1)
        check_at_least("data.data_workers", self.data_workers, 0)
        check_choice("data.bad_images", self.bad_images, ("stop", "skip"))
        check_choice("data.jpeg_decoder", self.jpeg_decoder, ("window", "pillow"))
        for name in ("min_crop_area", "eval_crop_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ConfigError(f"data.{name} must be in (0, 1], got {value!r}", fields=(f"data.{name}",))


@dataclasses.dataclass(frozen=True)
class RecipeSpec:
    """Where the recipe comes from: a preset or a file, then field changes.

    Attributes:
        preset: a name in :data:`harness.recipe.PRESETS` (used when ``file`` is None).
        file: a ``.json``/``.yaml`` recipe file.
        changes: field → typed value, applied last (``--set``, ``--per-worker-batch``, ``--epochs``).
    """

    preset: str = "fashion-mnist-goyal"
    file: str | None = None
    changes: dict = dataclasses.field(default_factory=dict)

    def resolve(self, *, world_size: int, dataset_size: int) -> Recipe:
        """The recipe for a launch of k = ``world_size`` workers over ``dataset_size`` images.

        Raises:
            ConfigError: unknown preset, unreadable or malformed file, or a field the recipe rejects.
        """
        if self.file is None and self.preset not in PRESETS:
            raise ConfigError(f"preset {self.preset!r} is unknown; choose from {', '.join(sorted(PRESETS))}",
                              fields=("preset",))
        try:
            base = Recipe.load(self.file) if self.file else PRESETS[self.preset]()
        except OSError as exc:
            raise ConfigError(f"cannot read recipe {self.file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"recipe {self.file or self.preset}: {exc}") from None
        try:
            return Recipe.from_dict({**base.to_dict(), "world_size": world_size, "dataset_size": dataset_size,
                                     **self.changes})
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run, everything but the recipe.

    Attributes:
        out: the run directory (new or empty unless ``overwrite`` or ``resume``).
        backend: ``"torch"`` or ``"keras"``.
        model: a built-in model name or ``package.module:function`` (:mod:`harness.runtime.models`).
        data: the :class:`DataConfig`.
        seed: seeds weights and the per-epoch shuffle.
        threads: intra-op threads per rank (None: the engine's default).
        max_steps: stop after this many optimizer steps (None: the recipe's total).
        timing_skip: steps per rank left out of throughput timings (start-up).
        checkpoint_steps: rank 0 checkpoints every N steps (0: never).
        checkpoint_epochs: ... and every N epochs (0: never).
        resume: continue from ``out/checkpoint.pkl``.
        overwrite: allow an ``out`` that has files.
        save_params: write the final parameters to ``out/params.npy``.
        fp16_allreduce: compress gradients to fp16 for the allreduce.
        nonfinite: ``"stop"`` or ``"skip"`` a step whose averaged gradient is not finite.
        device: ``"auto"`` (this rank's local GPU when there is one), ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (mixed precision, fp32 master weights).
        channels_last: torch's channels-last memory format for convolutional models.
        elastic: run under Horovod's elastic driver (:mod:`harness.runtime.elastic`): workers may
            leave and join, and the global batch, LR and shards follow k.
        commit_steps: with ``elastic``, steps between commits of the in-memory state (a lost worker
            costs at most this many steps).

    Raises:
        ConfigError: any field out of range, naming the field and value.
    """

    out: Path
    backend: str = "torch"
    model: str = "resnet-small"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    seed: int = 0
    threads: int | None = None
    max_steps: int | None = None
    timing_skip: int = 5
    checkpoint_steps: int = 0
    checkpoint_epochs: int = 0
    resume: bool = False
    overwrite: bool = False
    save_params: bool = False
    fp16_allreduce: bool = False
    nonfinite: str = "stop"
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    elastic: bool = False
    commit_steps: int = 10

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        for name in ("max_steps", "threads", "commit_steps"):
            check_at_least(name, getattr(self, name), 1)
        if self.elastic:
            for name in ("max_steps", "resume", "checkpoint_epochs"):
                if getattr(self, name):
                    raise ConfigError(f"{name} does not go with elastic (an elastic run trains whole epochs; "
                                      "its in-memory commits survive lost workers)", fields=(name, "elastic"))
            if self.backend != "torch":
                raise ConfigError("elastic is for backend torch: Horovod's Keras elastic state "
                                  "(horovod.tensorflow.elastic) needs tf.keras variables, not Keras 3's",
                                  fields=("elastic", "backend"))
        for name in ("timing_skip", "checkpoint_steps", "checkpoint_epochs"):
            check_at_least(name, getattr(self, name), 0)
        for name, allowed in (("nonfinite", NONFINITE_POLICIES), ("device", DEVICES), ("precision", PRECISIONS)):
            check_choice(name, getattr(self, name), allowed)

    def stop_step(self, recipe: Recipe) -> int:
        """The step to stop at: ``max_steps`` or the recipe's total, whichever is first."""
        return min(self.max_steps or recipe.total_steps, recipe.total_steps)


def check_at_least(name: str, value, minimum: int) -> None:
    """Raise :class:`ConfigError` naming field ``name`` unless ``value`` is None or an integer >= ``minimum``.

    Example::

        >>> check_at_least("threads", 0, 1)
        Traceback (most recent call last):
        ...
        harness.runtime.errors.ConfigError: threads must be >= 1, got 0
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ConfigError(f"{name} must be >= {minimum}, got {value}", fields=(name,))


def check_choice(name: str, value, allowed) -> None:
    """Raise :class:`ConfigError` naming field ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}", fields=(name,))


def to_dict(config) -> dict:
    """A config dataclass as JSON data: nested configs as dicts, paths as strings, tuples as lists."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def from_dict(cls, data: dict):
    """The ``cls`` config that :func:`to_dict` wrote (nested configs rebuilt, every field validated).

    Raises:
        ConfigError: ``data`` is not a mapping, has fields ``cls`` does not, or a value ``cls`` rejects.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; its fields are {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        nested = hints.get(name)
        values[name] = from_dict(nested, value) if dataclasses.is_dataclass(nested) else value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None
