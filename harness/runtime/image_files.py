"""Writing image datasets: Fashion-MNIST as an image folder, a folder as tar shards, and a generated
ImageNet-like folder of photographs for measuring decode speed.

Behind ``harness data export``, ``harness data shard`` and ``harness data photos``. Each writes into a
new (or empty) directory and never touches what is there; a writer that fails removes what it wrote.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np

from harness.runtime.errors import ConfigError
from harness.runtime.images import IMAGE_EXTENSIONS, open_folder

# Labels 0-9 of Fashion-MNIST (Xiao et al. 2017), prefixed with the label so sorted folders keep it.
FASHION_MNIST_CLASSES = ("0_tshirt-top", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal", "6_shirt",
                         "7_sneaker", "8_bag", "9_ankle-boot")
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg")}


@contextlib.contextmanager
def new_directory(out: str | Path):
    """``out`` created (or found empty) for writing; removed again if the block fails.

    Raises:
        ConfigError: ``out`` exists and is not an empty directory.
    """
    out = Path(out)
    existed = out.exists()
    if existed and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not empty (nothing was written)")
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if existed:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _encode(image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=FORMATS[fmt][0], **({"quality": quality} if fmt == "jpeg" else {}))
    return buffer.getvalue()


def export_fashion_mnist(out: str | Path, *, fmt: str = "png", data_dir: str | None = None,
                         train_size: int | None = None, test_size: int | None = None, quality: int = 90) -> dict:
    """Write Fashion-MNIST as an image folder: ``out/train/<label_name>/<index>.png`` and ``out/val/...``.

    Folder names start with the label (``0_tshirt-top`` ... ``9_ankle-boot``), so the folder's sorted
    classes are Fashion-MNIST's labels. Images are the raw 28×28 grey bytes, losslessly as PNG or
    as JPEG at ``quality``.

    Args:
        out: a new or empty directory.
        fmt: ``"png"`` or ``"jpeg"``.
        data_dir: the IDX files' directory (None: the Debian package's).
        train_size, test_size: write the first N of each split (None: all 60,000 and 10,000).

    Returns:
        ``{"train": count, "val": count}``.

    Raises:
        ConfigError: an unknown format, Fashion-MNIST not found, or ``out`` not empty.
    """
    from PIL import Image

    from harness.datasets import FILES, find_fashion_mnist, read_idx

    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", fields=("format",))
    try:
        base = find_fashion_mnist(data_dir)
        arrays = {key: read_idx(base / name) for key, name in FILES.items()}
    except (OSError, ValueError) as exc:
        raise ConfigError(str(exc), local=True, fields=("data_dir",)) from None
    counts = {}
    with new_directory(out) as root:
        for split, prefix, limit in (("train", "train", train_size), ("val", "test", test_size)):
            images, labels = arrays[f"{prefix}_images"][:limit], arrays[f"{prefix}_labels"][:limit]
            for name in FASHION_MNIST_CLASSES:
                (root / split / name).mkdir(parents=True)
            for i, (image, label) in enumerate(zip(images, labels)):
                path = root / split / FASHION_MNIST_CLASSES[label] / f"{i:05d}{FORMATS[fmt][1]}"
                path.write_bytes(_encode(Image.fromarray(image, mode="L"), fmt, quality))
            counts[split] = len(labels)
    return counts


def write_shards(folder: str | Path, out: str | Path, *, images_per_shard: int, seed: int = 0) -> dict:
    """Write an image folder as WebDataset tar shards: ``out/train-000000.tar``, ..., ``out/val-000000.tar``.

    Samples are shuffled once (seeded) before they are cut into shards, so every shard holds every
    class (a rank reads whole shards: :func:`harness.sharding.shard_level_indices`); each sample is
    ``KEY.<ext>`` (the image's bytes, unchanged) and ``KEY.cls`` (its label, the class's index in the
    folder's sorted classes). ``out/classes.txt`` lists the class names in label order.

    Args:
        folder: an image folder (``folder/train/<class>/...``, ``folder/val/...``).
        out: a new or empty directory.
        images_per_shard: samples per shard (the last shard of a split may hold fewer).
        seed: seeds the shuffle.

    Returns:
        ``{"train": shards, "val": shards, "pattern": "out/train-{000000..N}.tar"}``.

    Raises:
        ConfigError: ``images_per_shard`` < 1, a folder that is not one, or ``out`` not empty.
    """
    if isinstance(images_per_shard, bool) or not isinstance(images_per_shard, int) or images_per_shard < 1:
        raise ConfigError(f"images_per_shard must be >= 1, got {images_per_shard}", fields=("images_per_shard",))
    catalogs = dict(zip(("train", "val"), open_folder(folder)))
    result = {}
    with new_directory(out) as root:
        for split, catalog in catalogs.items():
            order = np.random.default_rng([seed, 0 if split == "train" else 1]).permutation(len(catalog))
            shards = [order[s:s + images_per_shard] for s in range(0, len(order), images_per_shard)]
            for number, shard in enumerate(shards):
                with tarfile.open(root / f"{split}-{number:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
                    for i in shard:
                        path = Path(catalog.files[catalog.file_of[i]])
                        ext = path.suffix.lower() if path.suffix.lower() in IMAGE_EXTENSIONS else ".jpg"
                        key = f"{split}{int(i):08d}"
                        _add(tar, key + ext, path.read_bytes())
                        _add(tar, key + ".cls", str(int(catalog.labels[i])).encode())
            result[split] = len(shards)
        (root / "classes.txt").write_text("\n".join(catalogs["train"].classes) + "\n")
    result["pattern"] = str(Path(out) / f"train-{{000000..{result['train'] - 1:06d}}}.tar")
    return result


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def photo_path() -> Path:
    """The photograph the generator starts from: the one matplotlib ships (``grace_hopper.jpg``).

    Raises:
        ConfigError: matplotlib (or its sample data) is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("photo: no photograph given and matplotlib (which ships one) is not installed",
                          fields=("photo",)) from None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise ConfigError(f"photo: {path} is missing", fields=("photo",))
    return path


def make_photo_folder(out: str | Path, *, classes: int = 10, images_per_class: int = 100, val_per_class: int = 10,
                      seed: int = 0, photo: str | Path | None = None, quality: int = 90) -> dict:
    """Generate an ImageNet-like image folder for measuring decode and augmentation speed.

    Each image is a random window of one real photograph (``photo``, default matplotlib's 512×600
    portrait) at an ImageNet-like size (width 400-500, height 300-375; the median ImageNet image is
    500×375), cut at the photograph's own resolution, flipped at random, colour-shifted per image and
    saved as a JPEG at ``quality``. The labels carry no signal: the folder is for speed, not accuracy.

    Returns:
        ``{"train": count, "val": count, "bytes_per_image": mean JPEG size}``.

    Raises:
        ConfigError: a count < 1, an unreadable photograph, or ``out`` not empty.
    """
    from PIL import Image, UnidentifiedImageError

    for name, value in (("classes", classes), ("images_per_class", images_per_class), ("val_per_class", val_per_class)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}", fields=(name,))
    source = Path(photo) if photo else photo_path()
    try:
        with Image.open(source) as img:
            base = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"photo: cannot read {source}: {exc}", fields=("photo",)) from None
    rng = np.random.default_rng(seed)
    sizes, counts = [], {}
    with new_directory(out) as root:
        for split, per_class in (("train", images_per_class), ("val", val_per_class)):
            for c in range(classes):
                (root / split / f"class{c:04d}").mkdir(parents=True)
                for i in range(per_class):
                    data = _encode(_variant(base, rng), "jpeg", quality)
                    (root / split / f"class{c:04d}" / f"{i:06d}.jpg").write_bytes(data)
                    sizes.append(len(data))
            counts[split] = classes * per_class
    return {**counts, "bytes_per_image": float(np.mean(sizes))}


def _variant(base, rng: np.random.Generator):
    """One generated image: a window of ``base`` at its own resolution (no resampling, so the photograph's
    detail and JPEG size stay), at an ImageNet-like size where ``base`` is large enough, flipped and
    colour-shifted."""
    from PIL import Image, ImageOps

    w, h = base.size
    cw, ch = min(w, int(rng.integers(400, 501))), min(h, int(rng.integers(300, 376)))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = base.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    gains = rng.uniform(0.8, 1.2, size=3)
    array = np.clip(np.asarray(image, np.float32) * gains, 0, 255).astype(np.uint8)
    return Image.fromarray(array)
