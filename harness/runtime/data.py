"""The data a run trains on: Fashion-MNIST, synthetic images, the user's own ``.npz`` file, or images on
disk (an image folder or tar shards, read by :class:`harness.runtime.pipeline.ImageSource`)."""

from __future__ import annotations

import dataclasses
import os

from harness.datasets import Dataset, load_fashion_mnist, load_npz, synthetic
from harness.runtime.config import DataConfig
from harness.runtime.errors import ConfigError

BUILTIN = ("fashion-mnist", "synthetic")
KINDS = "fashion-mnist, synthetic, a path ending in .npz, an image folder (DIR/train/<class>/<image>) or tar shards (PATH/train-*.tar)"


def synthetic_for(model: str, *, seed: int, train_size: int | None = None) -> Dataset:
    """Synthetic data shaped for ``model``: ImageNet-sized for ``resnet50``, 28×28 grey otherwise."""
    big = model == "resnet50"
    return synthetic(train_size=train_size or (512 if big else 4096), test_size=256,
                     input_shape=(3, 224, 224) if big else (1, 28, 28), num_classes=1000 if big else 10, seed=seed)


def load_data(config: DataConfig, *, model: str, seed: int, threads: int = 1, gpu: bool = False):
    """Load ``config.source`` and cut it to ``train_size``/``test_size``.

    Args:
        config: which data.
        model: the model name (sizes synthetic data).
        seed: seeds synthetic data, and an image source's shuffle and crops.
        threads: the rank's compute threads (sizes an image source's default decode workers).
        gpu: the rank computes on a GPU (its compute threads then leave the other cores to decoding).

    Returns:
        A :class:`harness.datasets.Dataset` (arrays), or an :class:`harness.runtime.pipeline.ImageSource`
        (images on disk; its decode workers already started: ``close()`` it).

    Raises:
        ConfigError: an unknown source, missing or corrupt Fashion-MNIST (``local``: it depends on the
            host), a bad ``.npz`` file, or an image folder or shards that are not as expected (one line
            naming the file and the problem).
    """
    if is_image_source(config.source):
        return open_images(config, seed=seed, threads=threads, gpu=gpu)
    if config.source == "synthetic":
        data = synthetic_for(model, seed=seed)
    elif config.source == "fashion-mnist":
        try:
            data = load_fashion_mnist(config.data_dir)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc), local=True, fields=("data.data_dir",)) from None
    elif config.source.endswith(".npz"):
        try:
            data = load_npz(config.source, layout=config.layout)
        except ValueError as exc:
            raise ConfigError(f"data.source {exc}", local="cannot read" in str(exc),
                              fields=("data.source", "layout")) from None
    elif os.sep in config.source and not os.path.exists(config.source):
        raise ConfigError(f"data.source: no such file or directory: {config.source}", local=True, fields=("data.source",))
    else:
        raise ConfigError(f"data.source must be {KINDS}, got {config.source!r}", fields=("data.source",))
    return dataclasses.replace(data, x_train=data.x_train[:config.train_size], y_train=data.y_train[:config.train_size],
                               x_test=data.x_test[:config.test_size], y_test=data.y_test[:config.test_size])


def is_image_source(source: str) -> bool:
    """True when ``source`` names images on disk: tar shards (a ``.tar`` pattern) or a directory."""
    from harness.runtime.images import is_shard_pattern

    return is_shard_pattern(source) or (source not in BUILTIN and not source.endswith(".npz") and os.path.isdir(source))


def open_images(config: DataConfig, *, seed: int, threads: int = 1, gpu: bool = False):
    """An :class:`~harness.runtime.pipeline.ImageSource` over ``config.source`` (its workers started).

    Raises:
        ConfigError: as :func:`harness.runtime.images.open_folder` / ``open_shards``.
    """
    from harness.runtime.images import Augment, infer_channels, is_shard_pattern, open_folder, open_shards
    from harness.runtime.pipeline import ImageSource, default_data_workers

    train, val = (open_shards if is_shard_pattern(config.source) else open_folder)(config.source)
    train, val = train.subset(config.train_size), val.subset(config.test_size)
    augment = Augment(image_size=config.image_size, channels=infer_channels(train), min_crop_area=config.min_crop_area,
                      eval_crop_fraction=config.eval_crop_fraction, flip=config.flip,
                      jpeg_decoder=config.jpeg_decoder)
    workers = default_data_workers(threads, gpu=gpu) if config.data_workers is None else config.data_workers
    return ImageSource(train, val, augment=augment, seed=seed, data_workers=workers, bad_images=config.bad_images)
