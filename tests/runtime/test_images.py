"""Images on disk (harness.runtime.images, pipeline, image_files): layouts, errors, determinism, workers."""

import io
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from harness.augment import train_crop
from harness.runtime.errors import ConfigError
from harness.runtime.image_files import make_photo_folder, write_shards
from harness.runtime.images import Augment, BadImageError, decode, expand_braces, open_folder, open_shards, val_pattern
from harness.runtime.pipeline import ImageSource


def make_folder(root, classes=("cat", "dog", "eel"), per_class=8, val_per_class=3, mode="RGB", ext=".jpg"):
    """A small image folder of random images of varied sizes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                w, h = int(rng.integers(20, 60)), int(rng.integers(20, 60))
                shape = (h, w, 3) if mode == "RGB" else (h, w)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / split / name / f"{i}{ext}")
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "imgs")


def _source(train, val, workers=0, **kw):
    kw.setdefault("augment", Augment(image_size=16))
    return ImageSource(train, val, seed=0, data_workers=workers, **kw)


def _epoch(source, rank=0, k=1, n=4, consumed=0, epoch=0):
    return [step for step in source.train_batches(epoch, consumed=consumed, rank=rank, world_size=k, per_worker_batch=n)]


def test_a_folder_is_classes_sorted_by_name_and_images_sorted(folder):
    train, val = open_folder(folder)
    assert train.classes == ["cat", "dog", "eel"] and len(train) == 24 and len(val) == 9
    assert train.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert train.sample_name(9) == str(folder / "train" / "dog" / "1.jpg")


@pytest.mark.parametrize("jpeg_decoder", ["window", "pillow"])
def test_batches_are_uint8_nhwc_the_same_for_any_worker_count_and_follow_the_core_crops(folder, jpeg_decoder):
    train, val = open_folder(folder)
    augment = Augment(image_size=16, jpeg_decoder=jpeg_decoder)
    runs = []
    for workers in (0, 1, 2):  # in the rank; one worker (shared-memory slots); two
        with _source(train, val, workers, augment=augment) as source:
            runs.append(_epoch(source))
    (x, y), = runs[0][0]
    assert x.dtype == np.uint8 and x.shape == (4, 16, 16, 3) and y.dtype == np.int64 and len(runs[0]) == 6
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a[0][0], b[0][0])
            np.testing.assert_array_equal(a[0][1], b[0][1])
    from harness.sharding import remaining_indices

    first = int(remaining_indices(24, epoch=0, seed=0, consumed=0, rank=0, world_size=1)[0])
    # the first image of the first step is that sample decoded with the core's window and flip ...
    want = decode(open(train.files[first], "rb").read(), "x", augment, train=True, seed=0, epoch=0, index=first)
    np.testing.assert_array_equal(x[0], want)
    if jpeg_decoder == "window":
        return  # the window decoder against a full decode: tests/runtime/test_jpeg.py
    # ... which is Pillow's antialiased resize of the core's window
    with Image.open(train.files[first]) as img:
        crop = train_crop(seed=0, epoch=0, index=first, width=img.width, height=img.height)
        want = np.asarray(img.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR, box=crop.box))
    np.testing.assert_array_equal(x[0], want[:, ::-1] if crop.flip else want)


def test_a_resumed_epoch_reads_the_rest_with_the_same_crops(folder):
    train, val = open_folder(folder)
    with _source(train, val, 1) as source:
        whole, rest = _epoch(source, k=2, rank=1), _epoch(source, k=2, rank=1, consumed=16)
    assert len(whole) == 3 and len(rest) == 1
    np.testing.assert_array_equal(whole[2][0][0], rest[0][0][0])


def test_evaluation_reads_each_image_once_over_the_ranks(folder):
    train, val = open_folder(folder)
    with _source(train, val, 0, eval_batch=2, augment=Augment(image_size=16, jpeg_decoder="pillow")) as source:
        counts = [sum(len(y) for _, y in source.eval_batches(rank=r, world_size=2)) for r in range(2)]
        x, _ = next(source.eval_batches(rank=0, world_size=1))
    assert counts == [5, 4]
    with Image.open(val.files[0]) as img:  # the centre crop, no flip
        side = min(img.size) * 0.875
        box = ((img.width - side) / 2, (img.height - side) / 2, (img.width + side) / 2, (img.height + side) / 2)
        np.testing.assert_array_equal(x[0], np.asarray(img.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR,
                                                                                 box=box)))


def test_shards_hold_the_folder_and_ranks_read_only_their_own_shards(folder, tmp_path):
    result = write_shards(folder, tmp_path / "shards", images_per_shard=5)
    assert result == {"train": 5, "val": 2, "pattern": str(tmp_path / "shards" / "train-{000000..000004}.tar")}
    train, val = open_shards(result["pattern"])
    folder_train, _ = open_folder(folder)
    assert len(train) == 24 and len(val) == 9 and sorted(train.labels) == sorted(folder_train.labels)
    with _source(train, val, 2) as source:
        assert source.num_classes == 3
        for epoch in range(3):
            files = [{int(train.file_of[i]) for i in _indices(source, epoch, r)} for r in range(2)]
            assert not files[0] & files[1]
        x, y = _epoch(source, k=2, rank=1, n=2)[0][0]
        assert x.shape == (2, 16, 16, 3)
    with pytest.raises(ConfigError, match="5 training shard"):
        _source(train, val, 0).check_world_size(6)


def _indices(source, epoch, rank):
    from harness.sharding import shard_level_indices

    return shard_level_indices(source.train.file_of, epoch=epoch, seed=0, consumed=0, rank=rank, world_size=2)


def test_brace_and_val_patterns():
    assert expand_braces("a-{0..2}-{x,y}.tar") == ["a-0-x.tar", "a-0-y.tar", "a-1-x.tar", "a-1-y.tar", "a-2-x.tar",
                                                   "a-2-y.tar"]
    assert expand_braces("s-{008..010}.tar") == ["s-008.tar", "s-009.tar", "s-010.tar"]
    assert val_pattern("/d/train/train-{0..3}.tar") == "/d/train/val-{0..3}.tar"
    with pytest.raises(ConfigError, match="must contain 'train'"):
        val_pattern("/d/shard-*.tar")


def _corrupt(path, how):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"not an image at all")


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_bad_image_stops_naming_the_file_or_is_skipped_and_counted(folder, how):
    bad = folder / "train" / "dog" / "3.jpg"
    _corrupt(bad, how)
    train, val = open_folder(folder)
    with _source(train, val, 1) as source, pytest.raises(BadImageError, match=str(bad)):
        _epoch(source)
    with _source(train, val, 1, bad_images="skip") as source:
        steps = _epoch(source)
        assert sum(len(y) for ((_, y),) in steps) == 23 and source.stats()["bad_images"] == [str(bad)]
        assert source.stats()["bad_images_skipped"] == 1 and source.stats()["images_decoded"] == 23


def test_decode_names_the_sample():
    with pytest.raises(BadImageError, match="cannot decode image s.tar:k.jpg"):
        decode(b"\xff\xd8 junk", "s.tar:k.jpg", Augment(), train=True, seed=0, epoch=0, index=0)


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _png():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("layout, message", [
    ("no-val", "has no val/ folder"),
    ("empty-class", "has no images"),
    ("no-classes", "has no class folders"),
    ("class-mismatch", "different classes"),
    ("cls-not-int", "is not a class index"),
    ("no-shard", "no shard matches"),
    ("no-label", "has no label"),
    ("not-a-tar", "cannot read shard"),
])
def test_a_bad_layout_is_one_error_naming_the_path(tmp_path, layout, message):
    root = tmp_path / "d"
    if layout in ("no-val", "empty-class", "class-mismatch", "no-classes"):
        make_folder(root)
        if layout == "no-val":
            os.system(f"rm -r {root / 'val'}")
        elif layout == "empty-class":
            (root / "train" / "fox").mkdir()
            (root / "val" / "fox").mkdir()
        elif layout == "no-classes":
            os.system(f"rm -r {root / 'train'}/*")
        else:
            os.rename(root / "val" / "eel", root / "val" / "emu")
        with pytest.raises(ConfigError, match=message):
            open_folder(root)
        return
    root.mkdir()
    good = [("a.png", _png()), ("a.cls", b"1")]
    members = {"cls-not-int": [("a.png", _png()), ("a.cls", b"one")], "no-label": [("a.png", _png())]}
    if layout == "not-a-tar":
        (root / "train-0.tar").write_bytes(b"x" * 1000)
    elif layout != "no-shard":
        _tar(root / "train-0.tar", members[layout])
    _tar(root / "val-0.tar", good)
    with pytest.raises(ConfigError, match=message):
        open_shards(str(root / "train-*.tar"))


def test_grey_images_give_one_channel(tmp_path):
    from harness.runtime.config import DataConfig
    from harness.runtime.data import load_data

    make_folder(tmp_path / "g", mode="L", ext=".png")
    source = load_data(DataConfig(source=str(tmp_path / "g"), image_size=12, data_workers=0), model="mlp", seed=0)
    assert source.input_shape == (1, 12, 12) and source.normalization == ((0.449,), (0.226,)) or \
        np.allclose(source.normalization, ((0.449,), (0.226,)), atol=1e-3)
    (x, _), = _epoch(source)[0]
    assert x.shape == (4, 12, 12, 1)


WORKER_SCRIPT = """
import sys, time
from harness.runtime.images import Augment, open_folder
from harness.runtime.pipeline import ImageSource
train, val = open_folder(sys.argv[1])
source = ImageSource(train, val, augment=Augment(image_size=16), seed=0, data_workers=2)
print(*source.worker_pids(), flush=True)
time.sleep(60)
"""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_decode_workers_do_not_outlive_their_rank(folder, how):
    proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        proc.send_signal(how)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()


def test_generated_photos_are_imagenet_like_jpegs(tmp_path):
    result = make_photo_folder(tmp_path / "p", classes=2, images_per_class=3, val_per_class=1)
    assert result["train"] == 6 and result["val"] == 2 and 20_000 < result["bytes_per_image"] < 200_000
    with Image.open(next((tmp_path / "p" / "train" / "class0000").iterdir())) as img:
        assert img.format == "JPEG" and 400 <= img.width <= 500 and 300 <= img.height <= 375
    with pytest.raises(ConfigError, match="exists and is not empty"):
        make_photo_folder(tmp_path / "p")


def test_default_decode_workers_are_the_ranks_share_of_cores_less_its_compute(monkeypatch):
    from harness.runtime.pipeline import default_data_workers

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("HOROVOD_LOCAL_SIZE", "1")
    monkeypatch.delenv("OMPI_COMM_WORLD_LOCAL_SIZE", raising=False)
    assert default_data_workers(1) == max(1, cores - 1)
    assert default_data_workers(cores) == 1  # never fewer than one
    assert default_data_workers(cores, gpu=True) == max(1, cores - 1)  # on a GPU the compute threads idle
    monkeypatch.setenv("HOROVOD_LOCAL_SIZE", str(cores))
    assert default_data_workers(1, gpu=True) == 1


def test_a_decode_worker_that_dies_ends_the_iteration_with_one_error(folder):
    from harness.runtime.pipeline import DecodeWorkerDied

    train, val = open_folder(folder)
    with _source(train, val, 2) as source:
        steps = source.train_batches(0, consumed=0, rank=0, world_size=1, per_worker_batch=1)  # 24 steps
        next(steps)
        os.kill(source.worker_pids()[0], signal.SIGKILL)
        # the executor notices a dead worker on its own thread; give it that moment, or on a loaded machine the
        # other worker may decode the whole (tiny) epoch first
        time.sleep(1.0)
        with pytest.raises(DecodeWorkerDied, match="a decode worker of this rank ended"):
            for _ in range(23):  # at most 3 were decoded ahead before the kill
                next(steps)


def test_decoded_chunks_come_back_through_shared_memory_that_closes_with_the_source(folder):
    from harness.runtime.pipeline import SharedSlots

    if not SharedSlots.supported():
        pytest.skip("no memfd here: chunks are pickled")

    def buffers():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:harness-decoded"):
                    found.append(fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
        return found

    train, val = open_folder(folder)
    before = buffers()
    with _source(train, val, 2) as source:
        steps = _epoch(source, n=4)
        held = buffers()
        assert len(steps) == 6 and len(held) > len(before)
        assert len(source._slots.made) <= 2 * (source.prefetch_steps + 1)  # reused, not one per chunk
    assert buffers() == before  # unmapped and closed, workers gone
