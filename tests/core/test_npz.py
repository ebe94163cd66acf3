"""The user's own data: ``load_npz`` reads both layouts and names every malformed input in one line."""

import numpy as np
import pytest

from harness.datasets import load_npz


def arrays(n=12, m=4, layout="NCHW", dtype=np.uint8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = (1, 8, 8) if layout == "NCHW" else (8, 8, 1)
    x = rng.integers(0, 256, size=(n + m, *shape)).astype(dtype)
    y = np.arange(n + m) % classes
    return {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}


def save(tmp_path, name="d.npz", **data):
    path = tmp_path / name
    np.savez(path, **data)
    return path


def test_both_layouts_give_the_same_nchw_images(tmp_path):
    nchw = arrays()
    nhwc = {k: (np.moveaxis(v, 1, 3) if k.startswith("x") else v) for k, v in nchw.items()}
    a = load_npz(save(tmp_path, "a.npz", **nchw), layout="NCHW")
    b = load_npz(save(tmp_path, "b.npz", **nhwc), layout="NHWC")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 3 and a.x_train.dtype == np.float32
    assert a.y_train.dtype == np.int64 and a.name == "a.npz"


def test_integer_images_are_normalised_by_the_train_set_and_floats_kept(tmp_path):
    data = load_npz(save(tmp_path, **arrays()))
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std()) - 1) < 1e-4
    floats = {k: (v.astype(np.float32) / 7 if k.startswith("x") else v) for k, v in arrays().items()}
    kept = load_npz(save(tmp_path, "f.npz", **floats))
    np.testing.assert_array_equal(kept.x_test, floats["x_test"])


def test_grey_images_may_have_no_channel_axis(tmp_path):
    data = {k: (v[:, 0] if k.startswith("x") else v) for k, v in arrays().items()}
    assert load_npz(save(tmp_path, **data)).input_shape == (1, 8, 8)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.pop("y_test"), "missing array(s) y_test"),
    (lambda d: d.update(y_train=d["y_train"][:-1]), "x_train has 12 images but y_train 11 labels"),
    (lambda d: d.update(x_test=d["x_test"][:, :, :4]), "train images are (1, 8, 8) (C, H, W), test images (1, 4, 8)"),
    (lambda d: d.update(x_train=d["x_train"].astype(np.float32) * np.nan), "pixel value(s) are NaN or Inf"),
    (lambda d: d.update(y_train=d["y_train"].astype(np.float32)), "labels must be a 1-D integer array"),
    (lambda d: d.update(y_test=-d["y_test"] - 1), "labels must be >= 0"),
    (lambda d: d.update(x_train=d["x_train"][:, 0, 0]), "images must be (N, H, W) or 4-D NCHW"),
    (lambda d: d.update(x_train=np.moveaxis(d["x_train"], 1, 3)), "is it NHWC? (layout)"),
    (lambda d: d.update(x_train=d["x_train"].astype(str)), "images must be integers or floats"),
])
def test_malformed_files_are_named_in_one_line(tmp_path, change, fragment):
    data = arrays()
    change(data)
    with pytest.raises(ValueError) as info:
        load_npz(save(tmp_path, **data))
    assert fragment in str(info.value) and str(tmp_path / "d.npz") in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_and_non_npz_files(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_npz(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        load_npz(tmp_path / "text.npz")
    with pytest.raises(ValueError, match="layout must be NCHW or NHWC"):
        load_npz(tmp_path / "text.npz", layout="CHW")
