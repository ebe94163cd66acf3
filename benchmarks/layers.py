"""Layer tables of the published cases' networks: parameters and FLOPs per layer, in forward order.

Each layer is one convolution or fully connected layer together with its BatchNorm (γ and β), the
unit whose gradients become ready together in the backward pass. FLOPs are those of the forward pass,
2·k_h·k_w·C_in·C_out·H_out·W_out for a convolution (a multiply-add counts two) and 2·C_in·C_out for a
fully connected layer, per image; the backward pass of a layer costs about twice its forward (gradient
with respect to the input and to the weights), so backward time is split between layers in proportion
to their forward FLOPs (:func:`readiness`). Pooling, activation and BatchNorm arithmetic are left out.

Architectures, from their definitions (the projects' own ``backends/torch/models.py`` builds ResNet-50
the same way; torchvision is not installed here):

* ResNet-50 / ResNet-101: He et al. 2016, arXiv 1512.03385, Table 1 (bottleneck blocks 3-4-6-3 and
  3-4-23-3; stride on the 3×3, "v1.5", as Goyal et al. used); 224×224 input.
* VGG-16: Simonyan & Zisserman 2014, arXiv 1409.1556, Table 1 configuration D; 224×224 input.
* Inception V3: Szegedy et al. 2015, arXiv 1512.00567, as built by torchvision's ``inception.py`` and
  Keras' ``inception_v3.py`` (modules A×3, B, C×4, D, E×2), without the auxiliary classifier; 299×299.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer: ``params`` (count, weights + bias + BatchNorm γ, β) and forward ``flops`` per image."""

    name: str
    params: int
    flops: float


def conv(name: str, cin: int, cout: int, kernel, size_out: int, *, bn: bool = True, bias: bool = False) -> Layer:
    """A k_h×k_w convolution with ``size_out``×``size_out`` outputs (square maps)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    weights = kh * kw * cin * cout
    return Layer(name, weights + (cout if bias else 0) + (2 * cout if bn else 0),
                 2.0 * weights * size_out * size_out)


def fc(name: str, cin: int, cout: int) -> Layer:
    """A fully connected layer with bias."""
    return Layer(name, cin * cout + cout, 2.0 * cin * cout)


def resnet(blocks: tuple[int, ...], num_classes: int = 1000) -> list[Layer]:
    """Bottleneck ResNet (v1.5) for 224×224 inputs; ``(3, 4, 6, 3)`` is ResNet-50, ``(3, 4, 23, 3)`` ResNet-101."""
    layers = [conv("conv1", 3, 64, 7, 112)]
    cin, size = 64, 56
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), blocks)):
        for i in range(count):
            out = size // 2 if stage > 0 and i == 0 else size
            name = f"layer{stage + 1}.{i}"
            layers += [conv(f"{name}.conv1", cin, width, 1, size), conv(f"{name}.conv2", width, width, 3, out),
                       conv(f"{name}.conv3", width, 4 * width, 1, out)]
            if i == 0:
                layers.append(conv(f"{name}.shortcut", cin, 4 * width, 1, out))
            cin, size = 4 * width, out
    return layers + [fc("fc", cin, num_classes)]


def vgg16(num_classes: int = 1000) -> list[Layer]:
    """VGG-16 (configuration D): 13 3×3 convolutions with bias, no BatchNorm, three fully connected layers."""
    layers, cin, size = [], 3, 224
    for stage, (width, count) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        for i in range(count):
            layers.append(conv(f"conv{stage + 1}_{i + 1}", cin, width, 3, size, bn=False, bias=True))
            cin = width
        size //= 2
    return layers + [fc("fc6", 512 * 7 * 7, 4096), fc("fc7", 4096, 4096), fc("fc8", 4096, num_classes)]


def _inception_a(name, cin, pool, s=35):
    return [conv(f"{name}.b1x1", cin, 64, 1, s), conv(f"{name}.b5x5_1", cin, 48, 1, s),
            conv(f"{name}.b5x5_2", 48, 64, 5, s), conv(f"{name}.b3x3dbl_1", cin, 64, 1, s),
            conv(f"{name}.b3x3dbl_2", 64, 96, 3, s), conv(f"{name}.b3x3dbl_3", 96, 96, 3, s),
            conv(f"{name}.bpool", cin, pool, 1, s)]


def _inception_c(name, c7, s=17):
    return [conv(f"{name}.b1x1", 768, 192, 1, s), conv(f"{name}.b7x7_1", 768, c7, 1, s),
            conv(f"{name}.b7x7_2", c7, c7, (1, 7), s), conv(f"{name}.b7x7_3", c7, 192, (7, 1), s),
            conv(f"{name}.b7x7dbl_1", 768, c7, 1, s), conv(f"{name}.b7x7dbl_2", c7, c7, (7, 1), s),
            conv(f"{name}.b7x7dbl_3", c7, c7, (1, 7), s), conv(f"{name}.b7x7dbl_4", c7, c7, (7, 1), s),
            conv(f"{name}.b7x7dbl_5", c7, 192, (1, 7), s), conv(f"{name}.bpool", 768, 192, 1, s)]


def _inception_e(name, cin, s=8):
    return [conv(f"{name}.b1x1", cin, 320, 1, s), conv(f"{name}.b3x3_1", cin, 384, 1, s),
            conv(f"{name}.b3x3_2a", 384, 384, (1, 3), s), conv(f"{name}.b3x3_2b", 384, 384, (3, 1), s),
            conv(f"{name}.b3x3dbl_1", cin, 448, 1, s), conv(f"{name}.b3x3dbl_2", 448, 384, 3, s),
            conv(f"{name}.b3x3dbl_3a", 384, 384, (1, 3), s), conv(f"{name}.b3x3dbl_3b", 384, 384, (3, 1), s),
            conv(f"{name}.bpool", cin, 192, 1, s)]


def inception_v3(num_classes: int = 1000) -> list[Layer]:
    """Inception V3 for 299×299 inputs, without the auxiliary classifier."""
    layers = [conv("Conv2d_1a_3x3", 3, 32, 3, 149), conv("Conv2d_2a_3x3", 32, 32, 3, 147),
              conv("Conv2d_2b_3x3", 32, 64, 3, 147), conv("Conv2d_3b_1x1", 64, 80, 1, 73),
              conv("Conv2d_4a_3x3", 80, 192, 3, 71)]
    layers += _inception_a("Mixed_5b", 192, 32) + _inception_a("Mixed_5c", 256, 64) + _inception_a("Mixed_5d", 288, 64)
    layers += [conv("Mixed_6a.b3x3", 288, 384, 3, 17), conv("Mixed_6a.b3x3dbl_1", 288, 64, 1, 35),
               conv("Mixed_6a.b3x3dbl_2", 64, 96, 3, 35), conv("Mixed_6a.b3x3dbl_3", 96, 96, 3, 17)]
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        layers += _inception_c(name, c7)
    layers += [conv("Mixed_7a.b3x3_1", 768, 192, 1, 17), conv("Mixed_7a.b3x3_2", 192, 320, 3, 8),
               conv("Mixed_7a.b7x7x3_1", 768, 192, 1, 17), conv("Mixed_7a.b7x7x3_2", 192, 192, (1, 7), 17),
               conv("Mixed_7a.b7x7x3_3", 192, 192, (7, 1), 17), conv("Mixed_7a.b7x7x3_4", 192, 192, 3, 8)]
    layers += _inception_e("Mixed_7b", 1280) + _inception_e("Mixed_7c", 2048)
    return layers + [fc("fc", 2048, num_classes)]


ARCHITECTURES = {
    "resnet50": lambda: resnet((3, 4, 6, 3)),
    "resnet101": lambda: resnet((3, 4, 23, 3)),
    "vgg16": vgg16,
    "inception3": inception_v3,
}


def architecture(name: str) -> list[Layer]:
    """The layer table of one of :data:`ARCHITECTURES`, in forward order.

    Raises:
        ValueError: an unknown name.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name]()


def readiness(layers: list[Layer], *, bytes_per_param: int = 4, backward_share: float = 2 / 3):
    """Gradient sizes in backward order and when each is ready, as fractions of one step's compute.

    Forward takes ``1 − backward_share`` of the step; backward the rest, split between layers in
    proportion to their FLOPs, last layer first. Layer i's gradient is ready when its own backward ends.

    Args:
        layers: forward order.
        bytes_per_param: 4 for fp32 gradients (what Horovod allreduces under torch AMP too).
        backward_share: backward's share of forward + backward (2/3: backward ≈ 2 × forward FLOPs).

    Returns:
        ``(sizes_bytes, ready_fraction)``: two float arrays in backward order; ``ready_fraction[-1] == 1``.

    Raises:
        ValueError: empty table or ``backward_share`` outside (0, 1].
    """
    if not layers or not 0 < backward_share <= 1:
        raise ValueError(f"need layers and backward_share in (0, 1], got {len(layers)} layers, {backward_share!r}")
    backward = layers[::-1]
    flops = np.array([layer.flops for layer in backward], dtype=float)
    sizes = np.array([layer.params * bytes_per_param for layer in backward], dtype=float)
    ready = (1 - backward_share) + backward_share * np.cumsum(flops) / flops.sum()
    return sizes, ready
