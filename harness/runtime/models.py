"""Which model to build: a built-in name, or the user's own builder as ``package.module:function``.

The builder is imported here (framework-free: :mod:`importlib`) and called by the engine, which
checks the type it returns. Like ``python -m`` and uvicorn's ``--app-dir .``, the current directory is
searched first, so ``--model mymodels:build`` finds ``./mymodels.py`` on every rank.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable

from harness.runtime.errors import ConfigError

BUILTIN_MODELS = ("resnet-small", "resnet50", "mlp")


@dataclasses.dataclass(frozen=True)
class UserModel:
    """The user's model builder and the ``package.module:function`` text that named it."""

    spec: str
    builder: Callable

    def build(self, input_shape: tuple, num_classes: int, expected: type | tuple):
        """``builder(input_shape, num_classes)``, checked to return an instance of ``expected``.

        Raises:
            ConfigError: (a ``ValueError``) the builder raised (its error named) or returned something else.
        """
        try:
            model = self.builder(input_shape, num_classes)
        except Exception as exc:  # the user's code may raise anything
            raise ConfigError(f"model {self.spec}: the builder raised {type(exc).__name__}: {exc}",
                              fields=("model",)) from None
        if not isinstance(model, expected):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"model {self.spec}: the builder returned {type(model).__name__}, not a {names}",
                              fields=("model",))
        return model


def resolve_model(spec: str) -> str | UserModel:
    """A built-in model name as itself, or the :class:`UserModel` that ``package.module:function`` names.

    The builder is called as ``builder(input_shape, num_classes)`` with ``input_shape`` (C, H, W)
    for torch and (H, W, C) for Keras, and must return a ``torch.nn.Module`` or a ``keras.Model``
    producing logits of shape (N, num_classes).

    Raises:
        ConfigError: neither a built-in name nor ``module:function``; the module cannot be imported
            (its error named); the attribute is missing or not callable.
    """
    if spec in BUILTIN_MODELS:
        return spec
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ConfigError(f"model must be one of {', '.join(BUILTIN_MODELS)} or package.module:function, "
                          f"got {spec!r}", fields=("model",))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything at import
        raise ConfigError(f"model {spec}: cannot import {module_name}: {type(exc).__name__}: {exc}",
                          fields=("model",)) from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ConfigError(f"model {spec}: {module_name} has no callable {attr!r}", fields=("model",))
    return UserModel(spec, builder)

