"""``harness data``: image datasets on disk (:mod:`harness.runtime.image_files`).

* ``harness data export fashion-mnist DIR --format png|jpeg``: Fashion-MNIST as an image folder.
* ``harness data shard DIR --out SHARDDIR --images-per-shard N``: an image folder as WebDataset tar shards.
* ``harness data photos DIR``: a generated ImageNet-like folder of JPEGs (for decode speed).
"""

from __future__ import annotations

import argparse


def export(args: argparse.Namespace) -> int:
    """Write the folder and say what was written."""
    from harness.runtime.image_files import export_fashion_mnist

    counts = export_fashion_mnist(args.out, fmt=args.format, data_dir=args.data_dir, train_size=args.train_size,
                                  test_size=args.test_size)
    print(f"{args.out}: {counts['train']} train and {counts['val']} val images ({args.format}) in 10 class folders")
    return 0


def shard(args: argparse.Namespace) -> int:
    """Write the shards and print the pattern that names them."""
    from harness.runtime.image_files import write_shards

    result = write_shards(args.folder, args.out, images_per_shard=args.images_per_shard, seed=args.seed)
    print(f"{args.out}: {result['train']} train and {result['val']} val shards; train with --dataset '{result['pattern']}'")
    return 0


def photos(args: argparse.Namespace) -> int:
    """Generate the folder and say how big its images are."""
    from harness.runtime.image_files import make_photo_folder

    result = make_photo_folder(args.out, classes=args.classes, images_per_class=args.images_per_class,
                               val_per_class=args.val_per_class, seed=args.seed, photo=args.photo,
                               quality=args.quality)
    print(f"{args.out}: {result['train']} train and {result['val']} val JPEGs, "
          f"{result['bytes_per_image'] / 1000:.0f} kB each on average")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """``harness data export|shard|photos``."""
    data = sub.add_parser("data", help="write image datasets: export Fashion-MNIST, shard a folder, generate photos")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    ex = dsub.add_parser("export", help="write Fashion-MNIST as an image folder (DIR/train/<class>/, DIR/val/<class>/)")
    ex.add_argument("dataset", choices=("fashion-mnist",))
    ex.add_argument("out", metavar="DIR", help="a new or empty directory")
    ex.add_argument("--format", choices=("png", "jpeg"), default="png", help="png (lossless, default) or jpeg (quality 90)")
    ex.add_argument("--data-dir", help="directory with the Fashion-MNIST IDX files")
    ex.add_argument("--train-size", type=int, help="write the first N training images (default: all 60,000)")
    ex.add_argument("--test-size", type=int, help="write the first N test images (default: all 10,000)")
    ex.set_defaults(func=export)
    sh = dsub.add_parser("shard", help="write an image folder as WebDataset tar shards (KEY.jpg + KEY.cls)")
    sh.add_argument("folder", metavar="DIR", help="an image folder (DIR/train/<class>/..., DIR/val/<class>/...)")
    sh.add_argument("--out", required=True, metavar="SHARDDIR", help="a new or empty directory")
    sh.add_argument("--images-per-shard", type=int, required=True, metavar="N")
    sh.add_argument("--seed", type=int, default=0, help="seeds the one shuffle before sharding")
    sh.set_defaults(func=shard)
    ph = dsub.add_parser("photos", help="generate ImageNet-like JPEGs (about 500x375, quality 90) from a photograph")
    ph.add_argument("out", metavar="DIR", help="a new or empty directory")
    ph.add_argument("--classes", type=int, default=10)
    ph.add_argument("--images-per-class", type=int, default=100)
    ph.add_argument("--val-per-class", type=int, default=10)
    ph.add_argument("--photo", help="the photograph to start from (default: the one matplotlib ships)")
    ph.add_argument("--quality", type=int, default=90)
    ph.add_argument("--seed", type=int, default=0)
    ph.set_defaults(func=photos)
