"""A JPEG's crop window decoded alone: libjpeg-turbo's region decode, as tf.data's ``decode_and_crop_jpeg``.

A random-resized crop (:func:`harness.augment.train_crop`) keeps 8–100% of an image, then resizes it to
S × S. Decoding the whole image first, as Pillow does, spends most of a decode worker's time on pixels
the crop throws away. :func:`decode_window` decodes only what the window needs (the compiled
``_jpegwindow`` module, built from ``_jpegwindow.c`` at install time):

* rows above the window are entropy-decoded only, rows below it are never read
  (``jpeg_skip_scanlines``, ``jpeg_abort_decompress``);
* only the iMCU columns the window touches are inverse-transformed and colour-converted
  (``jpeg_crop_scanline``);
* a window at least twice S on its short side is decoded at ``N/8`` scale (libjpeg's scaled inverse
  DCT, N = 4, 2 or 1: the smallest that keeps it at least S × S), as Pillow's ``draft`` would.

The window is then resampled to S × S in the same C call, with Pillow's antialiased bilinear filter
re-implemented tap for tap on the full image's coordinates: at N = 8 the pixels are those of
``Image.resize((S, S), BILINEAR, box=crop.box)`` on a full decode (``tests/runtime/test_jpeg.py``),
the torchvision ``RandomResizedCrop`` result. Where the module was not built (no libjpeg headers at
install time), :func:`available` is False and :func:`harness.runtime.images.decode` decodes with Pillow.

Not taken here, and left to Pillow's full decode: files that are not baseline or progressive 8-bit
YCbCr, RGB or grey JPEGs (CMYK, 12-bit), and files that do not end with the JPEG end marker (a
truncated file must fail as a whole, whatever window a crop picks).
"""

from __future__ import annotations

import math

import numpy as np

from harness.augment import Crop

try:
    from harness.runtime import _jpegwindow
except ImportError:  # built without libjpeg's headers: Pillow decodes everything
    _jpegwindow = None

JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"


def available() -> bool:
    """True when the compiled region decoder is installed."""
    return _jpegwindow is not None


def decoder_name() -> str:
    """What decodes JPEGs in this install, for benchmark tables: ``"libjpeg-turbo window"`` or ``"pillow"``."""
    return "libjpeg-turbo window" if available() else "pillow"


def header(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG the region decoder takes, or None (not a JPEG it takes: decode it whole)."""
    if _jpegwindow is None or not data.startswith(JPEG_START) or not data.endswith(JPEG_END):
        return None
    try:
        width, height, _components, colour_ok = _jpegwindow.header(data)
    except _jpegwindow.JpegError:
        return None
    return (width, height) if colour_ok else None


SCALES = (1, 2, 4, 8)  # the N/8 scales libjpeg-turbo decodes with SIMD (3/8, 5/8, ... are plain C: slower than 8/8)


def scale_for(crop: Crop, size: int) -> int:
    """N of the N/8 DCT scale a window is decoded at: the smallest N in (1, 2, 4, 8) whose scaled window is
    still at least ``size`` pixels on each side (8 when the window is smaller than twice ``size``)."""
    return next(n for n in SCALES if n == 8 or min(crop.width, crop.height) * n / 8 >= size)


def decode_window(data: bytes, crop: Crop, *, width: int, height: int, size: int, grey: bool) -> np.ndarray:
    """Decode ``crop``'s window of a JPEG, resample it to ``size`` × ``size`` and mirror it if the crop says so.

    At scale 8/8 the result is Pillow's ``Image.resize((S, S), BILINEAR, box=crop.box)`` of the full
    decode, pixel for pixel (the same taps, fixed-point coefficients and rounding). A window at least
    twice S on its short side is decoded at N/8 first (libjpeg's scaled inverse DCT), as Pillow's
    ``draft`` would, and the box resampled from there.

    Args:
        data: the encoded file; :func:`header` must have accepted it and given ``width``, ``height``.
        crop: the window, in pixels of the full image (:class:`harness.augment.Crop`).
        size: S, the output side in pixels.
        grey: decode to one channel (libjpeg's luma) instead of RGB.

    Returns:
        uint8 array (S, S, 3), or (S, S, 1) when ``grey``; read-only (it views the decoder's bytes).

    Raises:
        ValueError: the decoder failed on the bytes (``_jpegwindow.JpegError``); the caller falls back
            to a full decode, which names the problem.
    """
    n = scale_for(crop, size)
    factor = n / 8
    out_w, out_h = -(-width * n // 8), -(-height * n // 8)  # libjpeg rounds scaled sizes up
    x0, y0 = crop.left * factor, crop.top * factor
    x1, y1 = (crop.left + crop.width) * factor, (crop.top + crop.height) * factor
    # The filter reads up to its support (the shrink factor, at least 1) beyond the box, rounded: decode
    # that margin, and one column more on the right (libjpeg's upsampling approximates a region's last
    # column inside the image), so that every pixel a tap reads is the full decode's.
    margin = math.ceil(max(1.0, (x1 - x0) / size, (y1 - y0) / size)) + 2
    left, top = max(0, math.floor(x0) - margin), max(0, math.floor(y0) - margin)
    right, bottom = min(out_w, math.ceil(x1) + margin + 1), min(out_h, math.ceil(y1) + margin)
    pixels, _, _, _ = _jpegwindow.decode(data, n, left, top, right, bottom, grey, x0, y0, x1, y1, size, crop.flip)
    return np.frombuffer(pixels, np.uint8).reshape(size, size, 1 if grey else 3)


def decode_region(data: bytes, *, scale_num: int, left: int, top: int, right: int, bottom: int,
                  grey: bool = False) -> tuple[np.ndarray, int]:
    """The decoded pixels of a window of the ``scale_num``/8-scaled image, as libjpeg's region decode gives them.

    Returns:
        (pixels uint8 (rows, columns, C), shift): the columns start ``shift`` pixels left of ``left``
        (widened to iMCU edges); rows are ``top``..``bottom`` exactly. Every pixel is the full decode's
        except the last column when it ends inside the image (chroma upsampling there lacks the next
        sample: off by a few levels).

    Raises:
        ValueError: a window outside the scaled image, or bytes the decoder fails on.
    """
    pixels, got_w, got_h, shift = _jpegwindow.decode(data, scale_num, left, top, right, bottom, grey,
                                                     0.0, 0.0, 1.0, 1.0, 0, False)  # size 0: no resampling
    return np.frombuffer(pixels, np.uint8).reshape(got_h, got_w, 1 if grey else 3), shift
