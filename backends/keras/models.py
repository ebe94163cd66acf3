"""Keras 3 models for the Keras engine: the small ResNet, ResNet-50 and the BN-free MLP.

Inputs are channels-last (N, H, W, C): TensorFlow's CPU convolutions need NHWC. The engine
transposes the numpy core's NCHW arrays once. Each residual block's last BatchNorm is
zero-initialised (``gamma_initializer="zeros"``, Goyal et al. 2017 §5.1); BatchNorm uses torch's
defaults (momentum 0.1, i.e. Keras 0.9; epsilon 1e-5).

How far each model matches :mod:`backends.torch.models`:

- ``resnet50``: the same network (v1.5, no conv biases, explicit symmetric zero padding), so given
  the same weights it gives the same logits; 25,557,032 trainable parameters at 1000 classes.
- ``resnet_small``: the same layers and parameter count, but its convolutions use Keras
  ``padding="same"``, which pads a stride-2 3×3 convolution of an even-sized input by 0 before and
  1 after (torch pads 1 on each side), so its outputs differ from torch's.
- ``mlp``: equal for one channel (the flatten order is HWC here, CHW in torch).

References:
    He et al. 2016, arXiv 1512.03385 (ResNet; bottleneck with stride on the 3×3, "v1.5").
    Goyal et al. 2017, arXiv 1706.02677, §5.1 (zero-γ).
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


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    # torch's Conv2d(padding=kernel // 2): symmetric zero padding, then a "valid" convolution.
    if kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=name)(x)


def _bottleneck(x, width: int, stride: int, name: str):
    cout = 4 * width
    out = layers.ReLU()(_bn(f"{name}_bn1")(_conv(x, width, 1, 1, f"{name}_conv1")))
    out = layers.ReLU()(_bn(f"{name}_bn2")(_conv(out, width, 3, stride, f"{name}_conv2")))
    out = _bn(f"{name}_bn_last", zero_gamma=True)(_conv(out, cout, 1, 1, f"{name}_conv3"))
    shortcut = x
    if stride != 1 or x.shape[-1] != cout:
        shortcut = _bn(f"{name}_proj_bn")(_conv(x, cout, 1, stride, f"{name}_proj"))
    return layers.ReLU()(layers.Add()([out, shortcut]))


def resnet50(input_shape=(224, 224, 3), num_classes: int = 1000) -> keras.Model:
    """The torch backend's ``resnet50`` in Keras: (N, 224, 224, C) → logits (N, num_classes).

    ResNet-50 v1.5 (stride on the bottleneck's 3×3, as Goyal et al. used): 7×7/2 stem conv, BN,
    ReLU, 3×3/2 max pool; stages of 3, 4, 6, 3 bottlenecks (1×1 → 3×3 → 1×1 ×4, no conv biases,
    BN after each conv, a 1×1 conv + BN projection when the shape changes); global average pool;
    dense with bias. Every convolution pads explicitly as torch does (1 on each side for 3×3, 3 for
    7×7), never with Keras' asymmetric ``"same"``, so outputs equal torch's for equal weights.

    Args:
        input_shape: (H, W, C), channels last.
        num_classes: logits per example.

    Returns:
        A functional model; layers ``stage{s}_block{b}_{conv1,bn1,conv2,bn2,conv3,bn_last,proj,
        proj_bn}``, ``stem_conv``, ``stem_bn`` and ``fc``. At 1000 classes it has 25,557,032
        trainable parameters (torchvision's count) and 53,120 BN moving statistics
        (``count_params()`` is 25,610,152).
    """
    inputs = keras.Input(input_shape)
    x = layers.ReLU()(_bn("stem_bn")(_conv(inputs, 64, 7, 2, "stem_conv")))
    # torch pads max pooling with -inf; after the ReLU (x >= 0) zeros give the same maxima.
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)
    for s, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
        for b in range(1, blocks + 1):
            x = _bottleneck(x, width, stride if b == 1 else 1, f"stage{s}_block{b}")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="fc")(x), name="resnet50")


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
