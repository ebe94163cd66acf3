"""Image datasets on disk: what is there (a :class:`Catalog`), and one sample decoded and augmented.

Two layouts, the ones ImageNet users have:

* **An image folder** (torchvision's ``ImageFolder``, Horovod's and NVIDIA's ImageNet examples):
  ``DIR/train/<class>/<image>`` and ``DIR/val/<class>/<image>``, JPEG or PNG; classes sorted by name
  are labels 0, 1, ...
* **Sharded archives** (the WebDataset layout, for shared and object storage): tar files whose members
  are ``KEY.jpg`` (or ``.jpeg``/``.png``) and ``KEY.cls`` (the label, a decimal integer), named by a
  glob or brace pattern such as ``/data/train-{000000..000146}.tar``; the validation shards are named
  by the same pattern with ``train`` replaced by ``val`` (:func:`val_pattern`).

Opening checks the layout once, before anything runs (:class:`ConfigError`, one line naming the path);
a sample that cannot be decoded is found when it is read (:class:`BadImageError`). Decoding uses
Pillow (libjpeg-turbo); the window and flip come from :mod:`harness.augment`.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import re
import tarfile
from pathlib import Path

import numpy as np

from harness.augment import Crop, eval_crop, train_crop
from harness.runtime import jpeg
from harness.runtime.errors import ConfigError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SOURCE = ("data.source",)


class BadImageError(ValueError):
    """A sample whose bytes are not a readable image (corrupt, truncated, missing).

    Args:
        name: the file, or ``SHARD.tar:MEMBER`` for an archive member.
        reason: what the decoder said.
    """

    def __init__(self, name: str, reason: str):
        super().__init__(f"cannot decode image {name}: {reason}")
        self.name, self.reason = name, reason

    def __reduce__(self):  # crosses from a decode worker to its rank intact
        return type(self), (self.name, self.reason)


@dataclasses.dataclass(frozen=True)
class Catalog:
    """The samples of one split, in a fixed order, and where each one's bytes are.

    Attributes:
        name: the dataset's name for records (the folder or the pattern).
        files: the image files (folder) or the shard files (archives).
        file_of: (N,) int64: which of ``files`` holds sample i.
        offset, size: (N,) int64: the bytes of sample i in its file (size −1: the whole file).
        labels: (N,) int64.
        members: (N,) the archive member names (None for a folder).
        classes: the class names (a folder) or None (archives: labels are integers).
        sharded: True for archives (split over ranks at shard level).
    """

    name: str
    files: list[str]
    file_of: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    labels: np.ndarray
    members: list[str] | None = None
    classes: list[str] | None = None
    sharded: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def sample_name(self, i: int) -> str:
        """Sample ``i`` as a path (``SHARD.tar:MEMBER`` in an archive), for error messages."""
        path = self.files[self.file_of[i]]
        return f"{path}:{self.members[i]}" if self.members is not None else path

    def read(self, i: int, handles: dict | None = None) -> bytes:
        """The encoded bytes of sample ``i`` (``handles``: open archive files to reuse, by path).

        Raises:
            OSError: the file cannot be read.
        """
        path = self.files[self.file_of[i]]
        if self.size[i] < 0:
            with open(path, "rb") as f:
                return f.read()
        f = handles.get(path) if handles is not None else None
        if f is None:
            f = open(path, "rb")
            if handles is not None:
                handles[path] = f
        f.seek(int(self.offset[i]))
        data = f.read(int(self.size[i]))
        if handles is None:
            f.close()
        if len(data) != self.size[i]:
            raise OSError(f"archive ends after {len(data)} of {self.size[i]} bytes")
        return data

    def subset(self, count: int | None) -> Catalog:
        """The first ``count`` samples of an evenly spaced selection (every class kept in a sorted folder)."""
        if count is None or count >= len(self):
            return self
        keep = np.linspace(0, len(self) - 1, count).round().astype(np.int64)
        members = [self.members[i] for i in keep] if self.members is not None else None
        return dataclasses.replace(self, file_of=self.file_of[keep], offset=self.offset[keep], size=self.size[keep],
                                   labels=self.labels[keep], members=members)


# -- image folders ---------------------------------------------------------------------------------
def scan_folder(split: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(classes, image paths, labels) of ``split`` = ``DIR/train`` or ``DIR/val``, sorted.

    Raises:
        ConfigError: ``split`` is missing or unreadable, has no class folder, or a class folder has no image.
    """
    try:
        classes = sorted(entry.name for entry in os.scandir(split) if entry.is_dir())
    except OSError as exc:
        raise ConfigError(f"data.source: cannot read {split}: {exc.strerror}", local=True, fields=SOURCE) from None
    if not classes:
        raise ConfigError(f"data.source: {split} has no class folders (expected {split}/<class>/<image>)",
                          fields=SOURCE)
    paths, labels = [], []
    for label, name in enumerate(classes):
        try:
            found = sorted(e.path for e in os.scandir(split / name)
                           if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        except OSError as exc:
            raise ConfigError(f"data.source: cannot read {split / name}: {exc.strerror}", local=True,
                              fields=SOURCE) from None
        if not found:
            raise ConfigError(f"data.source: class folder {split / name} has no images "
                              f"({', '.join(IMAGE_EXTENSIONS)})", fields=SOURCE)
        paths += found
        labels += [label] * len(found)
    return classes, paths, np.asarray(labels, dtype=np.int64)


def open_folder(root: str | Path) -> tuple[Catalog, Catalog]:
    """The train and val catalogs of an image folder ``root`` (``root/train/<class>/...``, ``root/val/...``).

    Raises:
        ConfigError: a missing split, an empty class folder, or train and val with different classes.
    """
    root = Path(root)
    splits = []
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ConfigError(f"data.source: {root} has no {split}/ folder (expected {root}/train/<class>/<image> "
                              f"and {root}/val/<class>/<image>)", fields=SOURCE)
        classes, paths, labels = scan_folder(root / split)
        n = len(paths)
        splits.append(Catalog(name=str(root), files=paths, file_of=np.arange(n, dtype=np.int64),
                              offset=np.zeros(n, np.int64), size=np.full(n, -1, np.int64), labels=labels,
                              classes=classes))
    train, val = splits
    if train.classes != val.classes:
        only = sorted(set(train.classes) ^ set(val.classes))
        raise ConfigError(f"data.source: {root}/train and {root}/val have different classes "
                          f"({len(train.classes)} and {len(val.classes)}; not in both: {', '.join(only[:5])})",
                          fields=SOURCE)
    return train, val


# -- sharded archives ------------------------------------------------------------------------------
def expand_braces(pattern: str) -> list[str]:
    """WebDataset's brace patterns: ``{000..009}`` (a zero-padded range) and ``{a,b}`` (a list), nested left to right.

    Example::

        >>> expand_braces("train-{00..02}.tar")
        ['train-00.tar', 'train-01.tar', 'train-02.tar']
    """
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    body, head, tail = match.group(1), pattern[:match.start()], pattern[match.end():]
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        width = len(first)
        options = [f"{i:0{width}d}" for i in range(int(first), int(last) + 1)]
    else:
        options = body.split(",")
    return [name for option in options for name in expand_braces(head + option + tail)]


def match_shards(pattern: str) -> list[str]:
    """The existing files a shard pattern names (braces, then globs), sorted, each once.

    Raises:
        ConfigError: the pattern names no file.
    """
    found = sorted({path for part in expand_braces(pattern) for path in (glob.glob(part) or
                                                                        ([part] if os.path.isfile(part) else []))})
    if not found:
        raise ConfigError(f"data.source: no shard matches {pattern}", fields=SOURCE)
    return found


def val_pattern(pattern: str) -> str:
    """The validation shards' pattern: the last ``train`` in the file-name part replaced by ``val``.

    Raises:
        ConfigError: the file-name part has no ``train``.
    """
    head, name = os.path.split(pattern)
    at = name.rfind("train")
    if at < 0:
        raise ConfigError(f"data.source: cannot name the val shards of {pattern}: the shard names must contain "
                          "'train' (the val shards are the same names with 'val')", fields=SOURCE)
    return os.path.join(head, name[:at] + "val" + name[at + len("train"):])


def scan_shard(path: str) -> list[tuple[str, int, int, int]]:
    """(image member, offset, size, label) of each sample in one tar shard, in archive order.

    Raises:
        ConfigError: an unreadable archive, a ``.cls`` that is not an integer, or a key with no image or no label.
    """
    samples: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = os.path.basename(member.name)
                key = os.path.join(os.path.dirname(member.name), base.split(".", 1)[0])
                ext = base[len(base.split(".", 1)[0]):].lower()
                entry = samples.setdefault(key, {})
                if ext == ".cls":
                    text = tar.extractfile(member).read().decode("ascii", "replace").strip()
                    if not re.fullmatch(r"\d+", text):
                        raise ConfigError(f"data.source: {path}:{member.name} is not a class index "
                                          f"(a non-negative integer), got {text[:20]!r}", fields=SOURCE)
                    entry["label"] = int(text)
                elif ext in IMAGE_EXTENSIONS:
                    entry["image"] = (member.name, member.offset_data, member.size)
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"data.source: cannot read shard {path}: {exc}", local=True, fields=SOURCE) from None
    out = []
    for key, entry in samples.items():
        if "image" not in entry or "label" not in entry:
            missing = "image (.jpg/.jpeg/.png)" if "image" not in entry else "label (.cls)"
            raise ConfigError(f"data.source: {path}: sample {key} has no {missing}", fields=SOURCE)
        out.append((*entry["image"], entry["label"]))
    return out


def open_shards(pattern: str) -> tuple[Catalog, Catalog]:
    """The train and val catalogs of the shards ``pattern`` names and their val shards (:func:`val_pattern`).

    Raises:
        ConfigError: no shard matches, a shard is unreadable or malformed, or train and val have
            different label sets.
    """
    catalogs = []
    for split_pattern in (pattern, val_pattern(pattern)):
        files = match_shards(split_pattern)
        file_of, members, offset, size, labels = [], [], [], [], []
        for i, path in enumerate(files):
            for member, start, length, label in scan_shard(path):
                file_of.append(i)
                members.append(member)
                offset.append(start)
                size.append(length)
                labels.append(label)
        if not labels:
            raise ConfigError(f"data.source: the shards of {split_pattern} hold no samples", fields=SOURCE)
        catalogs.append(Catalog(name=pattern, files=files, file_of=np.asarray(file_of, np.int64),
                                offset=np.asarray(offset, np.int64), size=np.asarray(size, np.int64),
                                labels=np.asarray(labels, np.int64), members=members, sharded=True))
    train, val = catalogs
    extra = sorted(set(val.labels.tolist()) - set(train.labels.tolist()))
    if extra:
        raise ConfigError(f"data.source: the val shards of {pattern} have labels the train shards do not "
                          f"({', '.join(map(str, extra[:5]))})", fields=SOURCE)
    return train, val


def is_shard_pattern(source: str) -> bool:
    """True when ``source`` names tar shards (ends in ``.tar``, possibly inside a pattern)."""
    return source.endswith(".tar") or source.endswith(".tar}")


# -- one sample ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Augment:
    """How samples become arrays: the papers' input recipe (:mod:`harness.augment`) and its size.

    Attributes:
        image_size: S, the side of the square the network sees (224 for ImageNet).
        channels: 3 (RGB) or 1 (grey).
        min_crop_area: the smallest window, as a fraction of the image's area (0.08 in the papers).
        eval_crop_fraction: the evaluation window's side over the short side (0.875 = 224/256).
        flip: random horizontal flips in training.
        jpeg_decoder: ``"window"``: a JPEG's window decoded alone and resampled with Pillow's
            antialiased bilinear filter, re-done in C (:func:`harness.runtime.jpeg.decode_window`, where it
            is installed); ``"pillow"``: every image decoded whole by Pillow and resized by Pillow.
    """

    image_size: int = 224
    channels: int = 3
    min_crop_area: float = 0.08
    eval_crop_fraction: float = 0.875
    flip: bool = True
    jpeg_decoder: str = "window"

    def crop(self, *, train: bool, seed: int, epoch: int, index: int, width: int, height: int) -> Crop:
        """Sample ``index``'s window: a random-resized crop in training, the centre crop in evaluation."""
        if train:
            return train_crop(seed=seed, epoch=epoch, index=index, width=width, height=height,
                              scale=(self.min_crop_area, 1.0), flip=self.flip)
        return eval_crop(width, height, crop_fraction=self.eval_crop_fraction)


def decode(data: bytes, name: str, augment: Augment, *, train: bool, seed: int, epoch: int, index: int) -> np.ndarray:
    """One encoded image as a contiguous uint8 (S, S, C): its window (:meth:`Augment.crop`) resized to
    S × S in one resampling, then flipped when drawn.

    With ``augment.jpeg_decoder == "window"`` a JPEG is decoded window-only where the compiled region
    decoder is installed (:func:`harness.runtime.jpeg.decode_window`: the same pixels at full scale,
    a scaled inverse DCT first for windows at least twice S). Anything else (a PNG, a JPEG it does not take, ``"pillow"``) is decoded whole by Pillow
    and resized with its antialiased bilinear filter.

    Raises:
        BadImageError: the bytes are not a complete image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    size, grey = augment.image_size, augment.channels == 1
    dims = jpeg.header(data) if augment.jpeg_decoder == "window" else None
    if dims is not None:
        crop = augment.crop(train=train, seed=seed, epoch=epoch, index=index, width=dims[0], height=dims[1])
        try:
            return jpeg.decode_window(data, crop, width=dims[0], height=dims[1], size=size, grey=grey)
        except ValueError:
            pass  # Pillow's full decode says what is wrong with the file
    try:
        with Image.open(io.BytesIO(data)) as img:
            crop = augment.crop(train=train, seed=seed, epoch=epoch, index=index, width=img.width, height=img.height)
            mode = "L" if grey else "RGB"
            if img.mode != mode:  # JPEG decodes to RGB or L already: no copy then
                img = img.convert(mode)
            out = img.resize((size, size), Image.Resampling.BILINEAR, box=crop.box)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(name, str(exc) or type(exc).__name__) from None
    if crop.flip:  # Pillow's mirror: numpy's reversed view of 3-byte pixels would make the copy slow
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(out, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def infer_channels(catalog: Catalog, probes: int = 8) -> int:
    """1 when every one of ``probes`` evenly spaced images is grey (Pillow mode ``L``, ``LA``, ``I``, ``1``), else 3.

    Raises:
        ConfigError: a probed image cannot be read.
    """
    from PIL import Image, UnidentifiedImageError

    picks = np.linspace(0, len(catalog) - 1, min(probes, len(catalog))).round().astype(int)
    for i in picks:
        try:
            with Image.open(io.BytesIO(catalog.read(int(i)))) as img:
                if img.mode not in ("L", "LA", "I", "I;16", "1"):
                    return 3
        except (OSError, UnidentifiedImageError) as exc:
            raise ConfigError(f"data.source: cannot read image {catalog.sample_name(int(i))}: {exc}",
                              fields=SOURCE) from None
    return 1
