"""Models without torchvision: ResNet-50 (ImageNet shape) and a small ResNet for 28×28 images.

Every residual block names its last BatchNorm ``bn_last`` for zero-γ init
(:func:`backends.torch.params.zero_gamma_init`). ``mlp`` has no BatchNorm, for the exact
k×n ≡ 1×kn equivalence tests (BN statistics are per worker, Goyal et al. §2.3).

References:
    He et al. 2016, arXiv 1512.03385 (ResNet; bottleneck with stride on the 3×3, "v1.5").
"""

from __future__ import annotations

from torch import nn

MODELS = ("resnet-small", "resnet50", "mlp")


class BasicBlock(nn.Module):
    """3×3 → 3×3 residual block; a 1×1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn_last = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn_last(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 ×4 residual block of ResNet-50."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn_last = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn_last(self.conv3(out)) + self.shortcut(x))


def _stage(block, cin: int, width: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    layers, cout = [], width * getattr(block, "expansion", 1)
    for i in range(blocks):
        layers.append(block(cin if i == 0 else cout, width, stride if i == 0 else 1))
    return nn.Sequential(*layers), cout


def resnet_small(in_channels: int = 1, num_classes: int = 10, widths=(16, 32, 64)) -> nn.Sequential:
    """A 9-conv ResNet for 28×28 inputs: strided stem to 14×14, three BasicBlock stages.

    Input (N, in_channels, 28, 28) → logits (N, num_classes). 77,754 parameters for 1 channel, 10 classes.
    """
    stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                         nn.ReLU(inplace=True))
    stages, cin = [], widths[0]
    for i, width in enumerate(widths):
        stage, cin = _stage(BasicBlock, cin, width, 1, 1 if i == 0 else 2)
        stages.append(stage)
    return nn.Sequential(stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def resnet50(in_channels: int = 3, num_classes: int = 1000) -> nn.Sequential:
    """ResNet-50 (He et al. 2016; stride on the 3×3, as Goyal et al. used): (N, 3, 224, 224) → logits.

    25.6M parameters (97.5 MiB of float32 gradients per allreduce).
    """
    stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    stages, cin = [], 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        stage, cin = _stage(Bottleneck, cin, width, blocks, stride)
        stages.append(stage)
    return nn.Sequential(stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def mlp(input_shape=(1, 28, 28), num_classes: int = 10, hidden: int = 64) -> nn.Sequential:
    """Flatten → Linear → ReLU → Linear: no BatchNorm, so k workers × n equals 1 worker × kn."""
    size = 1
    for dim in input_shape:
        size *= dim
    return nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def build_model(name: str, *, input_shape=(1, 28, 28), num_classes: int = 10) -> nn.Module:
    """One of :data:`MODELS` for inputs of shape (C, H, W).

    Raises:
        ValueError: for an unknown name.
    """
    if name == "resnet-small":
        return resnet_small(input_shape[0], num_classes)
    if name == "resnet50":
        return resnet50(input_shape[0], num_classes)
    if name == "mlp":
        return mlp(input_shape, num_classes)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
