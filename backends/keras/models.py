"""Keras 3 models matching the torch backend's: the small ResNet, ResNet-50 and the BN-free MLP.

Inputs are channels-last (N, H, W, C): TensorFlow's CPU convolutions need NHWC. The engine
transposes the numpy core's NCHW arrays once. Each residual block's last BatchNorm is
zero-initialised (``gamma_initializer="zeros"``, Goyal et al. 2017 §5.1).
"""

from __future__ import annotations

import keras
from keras import layers

MODELS = ("resnet-small", "resnet50", "mlp")


def _bn(name: str, *, zero_gamma: bool = False):
    # torch BatchNorm2d defaults: momentum 0.1 (Keras 0.9), eps 1e-5.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name,
                                     gamma_initializer="zeros" if zero_gamma else "ones")


def _basic_block(x, width: int, stride: int, name: str):
    shortcut = x
    out = layers.Conv2D(width, 3, stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    out = layers.ReLU()(_bn(f"{name}_bn1")(out))
    out = layers.Conv2D(width, 3, 1, padding="same", use_bias=False, name=f"{name}_conv2")(out)
    out = _bn(f"{name}_bn_last", zero_gamma=True)(out)
    if stride != 1 or x.shape[-1] != width:
        shortcut = layers.Conv2D(width, 1, stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = _bn(f"{name}_proj_bn")(shortcut)
    return layers.ReLU()(layers.Add()([out, shortcut]))


def resnet_small(input_shape=(28, 28, 1), num_classes: int = 10, widths=(16, 32, 64)) -> keras.Model:
    """The torch backend's ``resnet_small`` in Keras: (N, 28, 28, C) → logits (N, num_classes)."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(widths[0], 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU()(_bn("stem_bn")(x))
    for i, width in enumerate(widths):
        x = _basic_block(x, width, 1 if i == 0 else 2, f"stage{i + 1}")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="fc")(x), name="resnet_small")


def resnet50(input_shape=(224, 224, 3), num_classes: int = 1000) -> keras.Model:
    """``keras.applications.ResNet50(weights=None)`` with logits (no softmax), 25,636,712 parameters."""
    return keras.applications.ResNet50(weights=None, input_shape=input_shape, classes=num_classes,
                                       classifier_activation=None)


def mlp(input_shape=(28, 28, 1), num_classes: int = 10, hidden: int = 64) -> keras.Model:
    """Flatten → Dense → ReLU → Dense, no BatchNorm (the torch ``mlp``; equal for one channel)."""
    inputs = keras.Input(input_shape)
    x = layers.Dense(hidden, activation="relu", name="hidden")(layers.Flatten()(inputs))
    return keras.Model(inputs, layers.Dense(num_classes, name="out")(x), name="mlp")


def build_model(name: str, *, input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """One of :data:`MODELS` for channels-last inputs of shape (H, W, C).

    Raises:
        ValueError: for an unknown name.
    """
    builders = {"resnet-small": resnet_small, "resnet50": resnet50, "mlp": mlp}
    if name not in builders:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    return builders[name](input_shape, num_classes)
