"""The papers' input recipe as numbers: which window of an image a sample trains on, and the flip.

Goyal et al. 2017 (arXiv 1706.02677, §5.1) train ResNet-50 with "scale and aspect ratio data
augmentation" (Szegedy et al. 2015, GoogLeNet; the form torchvision's ``RandomResizedCrop`` gives):
a window of 8-100% of the image's area with aspect ratio in [3/4, 4/3], resized to 224×224, and a
horizontal flip with p = 0.5; evaluation resizes the short side to 256 and takes the centre 224×224
(a centre window of 0.875 of the short side). This module only *chooses* windows; the decoder
(:mod:`harness.runtime.images`) cuts and resizes them. Every choice comes from one generator seeded
by ``(seed, epoch, sample index)``, so the window a sample gets does not depend on the backend, the
rank that reads it, the number of decode workers, or whether the run was interrupted and resumed.

Example::

    >>> crop = train_crop(seed=0, epoch=0, index=7, width=500, height=375)
    >>> crop == train_crop(seed=0, epoch=0, index=7, width=500, height=375)
    True
    >>> eval_crop(500, 375)
    Crop(left=85.9375, top=23.4375, width=328.125, height=328.125, flip=False)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Per-channel mean and std of ImageNet's training images (RGB, in [0, 1]): torchvision's, timm's and
# NVIDIA DeepLearningExamples' constants. A grey image uses their averages (timm's convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SCALE = (0.08, 1.0)  # area fraction of the window (Szegedy et al. 2015; Goyal et al. §5.1)
RATIO = (3 / 4, 4 / 3)  # aspect ratio (width / height) of the window
TRIES = 10  # draws before falling back to the centre crop (torchvision)
EVAL_CROP_FRACTION = 0.875  # 224 / 256


@dataclasses.dataclass(frozen=True)
class Crop:
    """A window of an image in pixels of the original (floats: a resize samples it exactly), and the flip.

    Attributes:
        left, top: the window's corner, pixels from the image's left and top edges.
        width, height: its size in pixels.
        flip: mirror the result left to right.
    """

    left: float
    top: float
    width: float
    height: float
    flip: bool

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom), as Pillow's ``resize(box=...)`` takes it."""
        return (self.left, self.top, self.left + self.width, self.top + self.height)


def sample_rng(*, seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation in one epoch (independent of everything else)."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def train_crop(*, seed: int, epoch: int, index: int, width: int, height: int, scale: tuple[float, float] = SCALE,
               ratio: tuple[float, float] = RATIO, flip: bool = True) -> Crop:
    """The random-resized-crop window and flip of training sample ``index`` in ``epoch``.

    Up to 10 draws of an area fraction ``s ~ U(scale)`` and a log-uniform aspect ratio
    ``r ∈ ratio``; the window is ``w = round(√(s·A·r))`` by ``h = round(√(s·A/r))`` at a uniform
    position, the first draw that fits. When none fits, the centre crop with the ratio clamped to
    ``ratio`` (torchvision ``RandomResizedCrop.get_params``, Szegedy et al. 2015, Goyal et al. §5.1).
    The flip is drawn first, p = 0.5.

    Args:
        seed, epoch, index: the run's seed, the epoch and the sample's index in the training set.
        width, height: the image's size in pixels (>= 1).
        scale: (min, max) area fraction, 0 < min <= max <= 1.
        ratio: (min, max) aspect ratio width/height, 0 < min <= max.
        flip: draw a horizontal flip (False: never flip; the draws do not change).

    Returns:
        A :class:`Crop` in the image's pixels (integers, as floats).

    Raises:
        ValueError: a size < 1, or a scale or ratio out of range.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be >= 1x1, got {width}x{height}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
    rng = sample_rng(seed=seed, epoch=epoch, index=index)
    flipped = bool(rng.random() < 0.5) and flip
    area, log_ratio = width * height, (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(TRIES):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            return Crop(float(left), float(top), float(w), float(h), flipped)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return Crop(float((width - w) // 2), float((height - h) // 2), float(w), float(h), flipped)


def eval_crop(width: int, height: int, *, crop_fraction: float = EVAL_CROP_FRACTION) -> Crop:
    """The evaluation window: the centre square of side ``crop_fraction`` × the short side.

    Resizing it to S × S is "resize the short side to S / crop_fraction, take the centre S × S"
    (256 then 224 for ``crop_fraction`` = 0.875, Goyal et al. §5.1) in one resampling.

    Raises:
        ValueError: a size < 1, or ``crop_fraction`` outside (0, 1].
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be >= 1x1, got {width}x{height}")
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    side = min(width, height) * crop_fraction
    return Crop((width - side) / 2, (height - side) / 2, side, side, False)


def normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for images in [0, 1]: ImageNet's for RGB, their averages for grey.

    Raises:
        ValueError: ``channels`` other than 1 or 3.
    """
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (N, H, W, C) images as float32 (N, C, H, W): ``(x / 255 − mean) / std`` per channel.

    The reference the engines' on-device normalisation is tested equal to.
    """
    x = images.astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
