"""Datasets as numpy arrays: Fashion-MNIST from its gzipped IDX files, and synthetic images.

Both backends read through here, so a torch run and a Keras run see the same bytes. Images come
back as float32 NCHW in [0, 1] normalised by the training set's mean and standard deviation;
labels as int64.

References:
    Xiao, Rasul & Vollgraf 2017, arXiv 1708.07747 (Fashion-MNIST). LeCun et al., the IDX format.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
from pathlib import Path

import numpy as np

# Where Debian's dataset-fashion-mnist package puts the files; $FASHION_MNIST_DIR overrides.
DEFAULT_DIRS = ("/usr/share/datasets/fashion-mnist",)
FILES = {
    "train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test splits as numpy arrays.

    Attributes:
        name: ``"fashion-mnist"`` or ``"synthetic"``.
        x_train: float32, shape (N, C, H, W).
        y_train: int64, shape (N,).
        x_test: float32, shape (M, C, H, W).
        y_test: int64, shape (M,).
        num_classes: number of labels.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])


def read_idx(path: str | Path) -> np.ndarray:
    """Read one (optionally gzipped) IDX file into an array of its stored type and shape.

    Raises:
        ValueError: if the file is not a valid IDX file (bad magic, type or size).
        OSError: if it cannot be read.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    body = data[4 + 4 * ndim:]
    if len(body) != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"{path}: IDX body has {len(body)} bytes, shape {shape} needs {dtype.itemsize * int(np.prod(shape))}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def find_fashion_mnist(directory: str | Path | None = None) -> Path:
    """The directory holding the four Fashion-MNIST files.

    Looks only in ``directory`` when one is given (a wrong path is an error, not a fallback);
    otherwise in ``$FASHION_MNIST_DIR``, then Debian's install locations.

    Raises:
        FileNotFoundError: naming the places searched and how to install the data.
    """
    places = (directory,) if directory else (os.environ.get("FASHION_MNIST_DIR"), *DEFAULT_DIRS)
    candidates = [Path(d) for d in places if d]
    for base in candidates:
        if all((base / name).exists() for name in FILES.values()):
            return base
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"Fashion-MNIST not found in {searched}; install the Debian package "
                            "dataset-fashion-mnist (make setup does) or give data_dir")


def _normalise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scaled_train = x_train.astype(np.float32) / 255.0
    mean, std = float(scaled_train.mean()), float(scaled_train.std())
    return (scaled_train - mean) / std, (x_test.astype(np.float32) / 255.0 - mean) / std


def load_fashion_mnist(directory: str | Path | None = None) -> Dataset:
    """Fashion-MNIST: 60,000 train and 10,000 test 28×28 grey images in 10 classes.

    Returns:
        A :class:`Dataset` with x of shape (N, 1, 28, 28), normalised by the train mean/std.

    Raises:
        FileNotFoundError: if the files are not installed.
        ValueError: if a file is corrupt or the splits do not match.
    """
    base = find_fashion_mnist(directory)
    arrays = {key: read_idx(base / name) for key, name in FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise ValueError(f"{base}: {split} images and labels differ in count")
    x_train, x_test = _normalise(arrays["train_images"], arrays["test_images"])
    return Dataset("fashion-mnist", x_train[:, None], arrays["train_labels"].astype(np.int64),
                   x_test[:, None], arrays["test_labels"].astype(np.int64), 10)


def synthetic(*, train_size: int = 1024, test_size: int = 256, input_shape=(1, 28, 28), num_classes: int = 10,
              seed: int = 0) -> Dataset:
    """Random images with a learnable label (the class shifts the mean), for benchmarks and tests.

    Args:
        train_size, test_size: numbers of images.
        input_shape: (C, H, W).
        num_classes: number of labels.
        seed: generator seed; equal seeds give equal data.

    Raises:
        ValueError: if a size is < 1.
    """
    if min(train_size, test_size, num_classes) < 1:
        raise ValueError(f"sizes must be >= 1, got train_size={train_size}, test_size={test_size}, num_classes={num_classes}")
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, num_classes, size=n).astype(np.int64)
        x = rng.normal(size=(n, *input_shape)).astype(np.float32) + (y / num_classes).astype(np.float32)[:, None, None, None]
        return x, y

    (x_train, y_train), (x_test, y_test) = split(train_size), split(test_size)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, num_classes)


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path, *, layout: str = "NCHW") -> Dataset:
    """The user's own data from an ``.npz`` file with arrays ``x_train, y_train, x_test, y_test``.

    Images are (N, C, H, W) with ``layout="NCHW"`` or (N, H, W, C) with ``"NHWC"`` (one-channel
    images may also be (N, H, W)); they come back NCHW float32. Integer images (e.g. uint8 pixels)
    are scaled to [0, 1] and normalised by the training set's mean and standard deviation, as
    Fashion-MNIST is; float images are used as given. Labels are integers in [0, num_classes), with
    ``num_classes`` = the largest label + 1.

    Example:
        >>> np.savez("my.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)   # doctest: +SKIP
        >>> load_npz("my.npz", layout="NHWC").input_shape                   # doctest: +SKIP
        (3, 32, 32)

    Raises:
        ValueError: one line naming the file and what is wrong: unreadable or not an npz, a missing
            array, images that are not 3-/4-D numbers or not finite, a channel axis that does not
            fit ``layout``, labels that are not 1-D non-negative integers, counts or image shapes
            that differ between arrays.
    """
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in NPZ_ARRAYS if name not in npz.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (need {', '.join(NPZ_ARRAYS)})")
            arrays = {name: npz[name] for name in NPZ_ARRAYS}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, EOFError) as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    images = {split: _npz_images(arrays[f"x_{split}"], f"{path}: x_{split}", layout) for split in ("train", "test")}
    labels = {split: _npz_labels(arrays[f"y_{split}"], f"{path}: y_{split}") for split in ("train", "test")}
    for split in ("train", "test"):
        if len(images[split]) != len(labels[split]):
            raise ValueError(f"{path}: x_{split} has {len(images[split])} images but y_{split} "
                             f"{len(labels[split])} labels")
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise ValueError(f"{path}: train images are {images['train'].shape[1:]} (C, H, W), "
                         f"test images {images['test'].shape[1:]}")
    x_train, x_test = images["train"], images["test"]
    if np.issubdtype(x_train.dtype, np.integer):
        x_train, x_test = _normalise(x_train, x_test)
    num_classes = int(max(labels["train"].max(), labels["test"].max())) + 1
    return Dataset(Path(path).name, np.ascontiguousarray(x_train, dtype=np.float32), labels["train"],
                   np.ascontiguousarray(x_test, dtype=np.float32), labels["test"], num_classes)


def _npz_images(x: np.ndarray, where: str, layout: str) -> np.ndarray:
    """Check one image array and return it as (N, C, H, W) in its own dtype."""
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == bool:
        raise ValueError(f"{where}: images must be integers or floats, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = np.moveaxis(x, 3, 1) if layout == "NHWC" else x
    else:
        raise ValueError(f"{where}: images must be (N, H, W) or 4-D {layout}, got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{where}: no images")
    channels, height, width = x.shape[1:]
    if channels >= min(height, width):
        raise ValueError(f"{where}: as {layout} this is {channels} channels of {height}x{width} images; "
                         f"is it {'NHWC' if layout == 'NCHW' else 'NCHW'}? (layout)")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError(f"{where}: {int(np.size(x) - np.isfinite(x).sum())} pixel value(s) are NaN or Inf")
    return x


def _npz_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Check one label array and return it as int64 (N,)."""
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: labels must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if len(y) and y.min() < 0:
        raise ValueError(f"{where}: labels must be >= 0, found {int(y.min())}")
    return y.astype(np.int64)
