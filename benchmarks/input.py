"""``harness bench input``: the input pipeline's images/s per core against tf.data's, on the same files.

The pipelines decode the same training images of an image folder (or tar shards) into 224×224 training
crops, each with W = 1, 2, ... CPU workers, measured one after the other in the same run:

* ``harness``: this project's pipeline (:class:`harness.runtime.pipeline.ImageSource`): W decode
  processes, the papers' random-resized crop and flip (:mod:`harness.augment`), each JPEG's window
  decoded alone (:mod:`harness.runtime.jpeg`: libjpeg-turbo's region and scaled decode, bilinear
  resampling), uint8 batches back through shared memory.
* ``harness-pillow``: the same pipeline with ``jpeg_decoder="pillow"``: Pillow's full decode and
  antialiased resize (what the window decoder replaces).
* ``tfdata``: the MLPerf ResNet-50 reference's input (mlcommons/training
  ``image_classification/tensorflow2/imagenet_preprocessing.py``): ``tf.image.sample_distorted_bounding_box``
  (area 5-100%, ratio 0.75-1.33, 100 attempts), ``tf.image.decode_and_crop_jpeg`` (decodes only the
  window), bilinear resize, random flip; ``Dataset.map`` with ``num_parallel_calls = W`` on a private
  thread pool of W threads (its best setting at W cores), and once more at its own defaults
  (``AUTOTUNE``, the default thread pool: every core) as ``tfdata-default``. Run in a child process, so
  TensorFlow's threads never share this process.
* ``decode``: Pillow's full decode alone, W processes: the ceiling of a full-decode pipeline.

Per core is images/s ÷ W. Measuring returns rows; :func:`write_results` writes ``input.csv`` and
``summary.json``; :func:`render_table` formats the ratios.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harness.runtime.errors import ConfigError

PIPELINES = ("harness", "harness-pillow", "tfdata", "tfdata-default", "decode")
BATCH = 64  # images a step's worth of decoding is measured in


@dataclasses.dataclass(frozen=True)
class InputBench:
    """One ``harness bench input`` run.

    Attributes:
        dataset: an image folder or a tar shard pattern (:mod:`harness.runtime.images`).
        out: the directory for ``input.csv`` and ``summary.json`` (new or empty unless ``overwrite``).
        data_workers: the worker counts W to measure, each >= 1.
        images: training images decoded per measurement (after one warm-up batch).
        image_size: S, the crops' side.
        pipelines: which of :data:`PIPELINES` to measure (``tfdata*`` need TensorFlow).
        overwrite: allow an ``out`` that has files.

    Raises:
        ConfigError: a field out of range, naming it.
    """

    dataset: str
    out: Path
    data_workers: tuple[int, ...] = (1,)
    images: int = 1024
    image_size: int = 224
    pipelines: tuple[str, ...] = PIPELINES
    overwrite: bool = False

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        counts = self.data_workers
        if not counts or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in counts):
            raise ConfigError(f"data_workers must be integers >= 1, got {list(counts)}", fields=("data_workers",))
        if self.images < BATCH:
            raise ConfigError(f"images must be >= {BATCH}, got {self.images}", fields=("images",))
        unknown = sorted(set(self.pipelines) - set(PIPELINES))
        if unknown:
            raise ConfigError(f"pipelines: unknown {', '.join(unknown)}; choose from {', '.join(PIPELINES)}",
                              fields=("pipelines",))


def open_training_images(dataset: str, image_size: int):
    """(train catalog, augment) of ``dataset`` for measuring: crops of ``image_size``.

    Raises:
        ConfigError: as :func:`harness.runtime.images.open_folder` / ``open_shards``.
    """
    from harness.runtime.images import Augment, infer_channels, is_shard_pattern, open_folder, open_shards

    train, _ = (open_shards if is_shard_pattern(dataset) else open_folder)(dataset)
    return train, Augment(image_size=image_size, channels=infer_channels(train))


def measure_harness(catalog, augment, *, workers: int, images: int, seed: int = 0) -> dict:
    """This project's pipeline with ``workers`` decode processes: images/s over ``images`` training crops.

    The workers start first (not timed); the first batch is a warm-up; then batches of 64 are drawn
    from the epochs' shuffles until ``images`` more were decoded.

    Raises:
        ConfigError: fewer training images than one batch.
    """
    from harness.runtime.pipeline import ImageSource

    if len(catalog) < BATCH:
        raise ConfigError(f"dataset has {len(catalog)} training images, fewer than a batch of {BATCH}",
                          fields=("dataset",))

    def epochs(source):  # epoch after epoch, as long as the measurement needs
        for epoch in range(10**9):
            yield from source.train_batches(epoch, consumed=0, rank=0, world_size=1, per_worker_batch=BATCH)

    with ImageSource(catalog, catalog, augment=augment, seed=seed, data_workers=workers) as source:
        batches = epochs(source)
        next(batches)
        t0, done = time.perf_counter(), 0
        while done < images:
            (x, _), = next(batches)
            done += len(x)
        seconds = time.perf_counter() - t0
    return {"images": done, "seconds": seconds}


def _full_decode(data: bytes) -> int:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB")).shape[0]


def _read_and_decode(args) -> int:
    catalog, indices = args
    return sum(_full_decode(catalog.read(int(i))) for i in indices)


def measure_decode(catalog, *, workers: int, images: int) -> dict:
    """Pillow's full decode alone in ``workers`` processes (the ceiling of a full-decode pipeline)."""
    size = max(1, BATCH // workers)  # a batch split over the workers, as the pipeline splits it
    order = np.resize(np.random.default_rng(0).permutation(len(catalog)), images + size * workers)
    warm, timed = order[:size * workers], order[size * workers:]
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_read_and_decode, [(catalog, part) for part in np.array_split(warm, workers)]))
        t0 = time.perf_counter()
        done = sum(pool.map(_read_and_decode, [(catalog, timed[s:s + size]) for s in range(0, len(timed), size)]))
        seconds = time.perf_counter() - t0
    return {"images": len(timed), "seconds": seconds, "rows_decoded": done}


TFDATA = r'''
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

files, workers, images, size, batch = json.loads(sys.argv[1])

def decode_crop_flip(path):
    # mlcommons/training image_classification/tensorflow2/imagenet_preprocessing.py:
    # _decode_crop_and_flip, then _resize_image (bilinear); normalisation left out, as in ours.
    buffer = tf.io.read_file(path)
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
    begin, crop, _ = tf.image.sample_distorted_bounding_box(
        tf.image.extract_jpeg_shape(buffer), bounding_boxes=bbox, min_object_covered=0.1,
        aspect_ratio_range=[0.75, 1.33], area_range=[0.05, 1.0], max_attempts=100,
        use_image_if_no_bounding_boxes=True)
    offset_y, offset_x, _ = tf.unstack(begin)
    height, width, _ = tf.unstack(crop)
    image = tf.image.decode_and_crop_jpeg(buffer, tf.stack([offset_y, offset_x, height, width]), channels=3)
    image = tf.image.random_flip_left_right(image)
    return tf.compat.v1.image.resize(image, [size, size], method=tf.image.ResizeMethod.BILINEAR,
                                     align_corners=False)

dataset = tf.data.Dataset.from_tensor_slices(files).repeat()
calls = tf.data.AUTOTUNE if workers == 0 else workers
dataset = dataset.map(decode_crop_flip, num_parallel_calls=calls).batch(batch).prefetch(2)
options = tf.data.Options()
if workers:
    options.threading.private_threadpool_size = workers
    options.threading.max_intra_op_parallelism = 1
dataset = dataset.with_options(options)
it = iter(dataset)
next(it)
t0, done = time.perf_counter(), 0
while done < images:
    done += int(next(it).shape[0])
print(json.dumps({"images": done, "seconds": time.perf_counter() - t0}))
'''


def measure_tfdata(catalog, *, workers: int, images: int, image_size: int) -> dict:
    """The MLPerf reference's tf.data input on the same files, in a child process (``workers`` = 0: its defaults).

    Raises:
        ConfigError: TensorFlow is missing, or the files are archive members (tf.data reads paths here).
    """
    if catalog.members is not None:
        raise ConfigError("pipelines tfdata reads image files; measure it on an image folder", fields=("pipelines",))
    order = np.random.default_rng(0).permutation(len(catalog))
    files = [catalog.files[catalog.file_of[i]] for i in order]
    proc = subprocess.run([sys.executable, "-c", TFDATA, json.dumps([files, workers, images, image_size, BATCH])],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"pipelines tfdata failed: {last}", fields=("pipelines",))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(config: InputBench, *, log=print) -> list[dict]:
    """Measure every pipeline at every worker count; one row each.

    Returns:
        Rows ``{"pipeline", "workers", "images", "seconds", "images_per_s", "images_per_s_per_core",
        "ratio_to_tfdata"}`` (the last for ``harness`` rows where ``tfdata`` ran at the same W).
    """
    catalog, augment = open_training_images(config.dataset, config.image_size)
    rows = []
    for workers in config.data_workers:
        for pipeline in config.pipelines:
            if pipeline == "tfdata-default" and workers != config.data_workers[0]:
                continue  # its defaults do not depend on W
            if pipeline.startswith("harness"):
                decoder = "pillow" if pipeline == "harness-pillow" else "window"
                result = measure_harness(catalog, dataclasses.replace(augment, jpeg_decoder=decoder),
                                         workers=workers, images=config.images)
            elif pipeline == "decode":
                result = measure_decode(catalog, workers=workers, images=config.images)
            else:
                result = measure_tfdata(catalog, workers=0 if pipeline == "tfdata-default" else workers,
                                        images=config.images, image_size=config.image_size)
            cores = workers if pipeline != "tfdata-default" else None
            rate = result["images"] / result["seconds"]
            rows.append({"pipeline": pipeline, "workers": cores, "images": result["images"],
                         "seconds": result["seconds"], "images_per_s": rate,
                         "images_per_s_per_core": rate / cores if cores else None})
            log(f"{pipeline:>14} W={cores or 'auto':>4}: {rate:8.1f} images/s"
                + (f", {rate / cores:7.1f} per core" if cores else ""))
    for row in rows:
        peer = next((r for r in rows if r["pipeline"] == "tfdata" and r["workers"] == row["workers"]), None)
        row["ratio_to_tfdata"] = row["images_per_s"] / peer["images_per_s"] \
            if peer and row["pipeline"].startswith("harness") else None
    return rows


def render_table(rows: list[dict]) -> str:
    """A Markdown table: images/s and per core of each pipeline at each W, and harness / tf.data."""
    from tabulate import tabulate

    table = [[r["pipeline"], r["workers"] or "auto", f"{r['images_per_s']:.1f}",
              "" if r["images_per_s_per_core"] is None else f"{r['images_per_s_per_core']:.1f}",
              "" if r["ratio_to_tfdata"] is None else f"{r['ratio_to_tfdata']:.3f}"] for r in rows]
    return tabulate(table, headers=["pipeline", "workers", "images/s", "per core", "harness / tf.data"],
                    tablefmt="github")


def write_results(config: InputBench, rows: list[dict], environment: dict) -> Path:
    """``OUT/input.csv`` (one row per pipeline and W) and ``OUT/summary.json``; returns the CSV's path."""
    import csv

    config.out.mkdir(parents=True, exist_ok=True)
    path = config.out / "input.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (config.out / "summary.json").write_text(json.dumps(
        {"kind": "input", "dataset": config.dataset, "image_size": config.image_size, "images": config.images,
         "results": rows, **environment}, indent=2, default=str) + "\n")
    return path
