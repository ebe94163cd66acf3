"""The data a run trains on: Fashion-MNIST, synthetic images, or the user's own ``.npz`` file."""

from __future__ import annotations

import dataclasses

from harness.datasets import Dataset, load_fashion_mnist, load_npz, synthetic
from harness.runtime.config import DataConfig
from harness.runtime.errors import ConfigError

BUILTIN = ("fashion-mnist", "synthetic")


def synthetic_for(model: str, *, seed: int, train_size: int | None = None) -> Dataset:
    """Synthetic data shaped for ``model``: ImageNet-sized for ``resnet50``, 28×28 grey otherwise."""
    big = model == "resnet50"
    return synthetic(train_size=train_size or (512 if big else 4096), test_size=256,
                     input_shape=(3, 224, 224) if big else (1, 28, 28), num_classes=1000 if big else 10, seed=seed)


def load_data(config: DataConfig, *, model: str, seed: int) -> Dataset:
    """Load ``config.source`` and cut it to ``train_size``/``test_size``.

    Args:
        config: which data.
        model: the model name (sizes synthetic data).
        seed: seeds synthetic data.

    Raises:
        ConfigError: an unknown source, missing or corrupt Fashion-MNIST (``local``: it depends on the
            host), or a bad ``.npz`` file (one line naming the file and the problem).
    """
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
    else:
        raise ConfigError(f"data.source must be {', '.join(BUILTIN)} or a path ending in .npz, got {config.source!r}",
                          fields=("data.source",))
    return dataclasses.replace(data, x_train=data.x_train[:config.train_size], y_train=data.y_train[:config.train_size],
                               x_test=data.x_test[:config.test_size], y_test=data.y_test[:config.test_size])
