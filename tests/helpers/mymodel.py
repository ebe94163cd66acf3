"""A user's own model builders, as ``harness train --model tests.helpers.mymodel:NAME`` imports them.

Each is called as ``f(input_shape, num_classes)``: (C, H, W) for torch, (H, W, C) for Keras.
"""


def build(input_shape, num_classes):
    """A small torch conv net: conv 3×3 → BN → ReLU → global average pool → linear."""
    from torch import nn

    channels = input_shape[0]
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def build_keras(input_shape, num_classes):
    """The same net in Keras 3 (channels-last input)."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)))
    outputs = layers.Dense(num_classes)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def raises(input_shape, num_classes):
    """A builder with a bug."""
    raise RuntimeError("my builder is broken")


def wrong_type(input_shape, num_classes):
    """A builder that returns something that is not a model."""
    return {"layers": 3}


NOT_CALLABLE = 3
