"""The JPEG window decoder (harness.runtime.jpeg, _jpegwindow.c) against Pillow's full decode and a numpy
bilinear reference: the same pixels, only fewer of them decoded."""

import io

import numpy as np
import pytest
from PIL import Image

from harness.augment import Crop, train_crop
from harness.runtime import jpeg
from harness.runtime.image_files import photo_path
from harness.runtime.images import Augment, BadImageError, decode

pytestmark = pytest.mark.skipif(not jpeg.available(), reason="the window decoder was not built (no libjpeg headers)")


def photo_jpeg(width=487, height=351, *, mode="RGB", subsampling=2, progressive=False, quality=90) -> bytes:
    """A window of matplotlib's photograph as a JPEG (4:2:0 by default; 0 is 4:4:4)."""
    with Image.open(photo_path()) as img:
        img = img.convert(mode).crop((13, 29, 13 + width, 29 + height))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=subsampling, progressive=progressive)
    return buf.getvalue()


def full_decode(data: bytes, mode="RGB") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert(mode))


def bilinear(image: np.ndarray, box, size: int) -> np.ndarray:
    """Reference resampling: output pixel j samples x = x0 + (j + 0.5)(x1 - x0)/S - 0.5, clamped (float64)."""
    h, w = image.shape[:2]

    def taps(lo, hi, n):
        x = np.clip(lo + (np.arange(size) + 0.5) * (hi - lo) / size - 0.5, 0, n - 1)
        a = np.floor(x).astype(int)
        return a, np.minimum(a + 1, n - 1), x - a

    xa, xb, wx = taps(box[0], box[2], w)
    ya, yb, wy = taps(box[1], box[3], h)
    img = image.astype(np.float64)
    rows = img[ya] * (1 - wy)[:, None, None] + img[yb] * wy[:, None, None]
    out = rows[:, xa] * (1 - wx)[None, :, None] + rows[:, xb] * wx[None, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("subsampling,progressive", [(2, False), (0, False), (2, True)])
def test_a_region_decodes_to_exactly_the_full_decodes_pixels(subsampling, progressive):
    data = photo_jpeg(subsampling=subsampling, progressive=progressive)
    full = full_decode(data)
    for left, top, right, bottom in [(0, 0, 487, 351), (37, 101, 300, 250), (200, 0, 487, 40), (1, 350, 3, 351)]:
        pixels, shift = jpeg.decode_region(data, scale_num=8, left=left, top=top, right=right, bottom=bottom)
        assert 0 <= shift < 32 and pixels.shape[0] == bottom - top and pixels.shape[1] >= right - left + shift
        exact = right - left if right == 487 else right - left - 1  # a last column inside the image: see docstring
        np.testing.assert_array_equal(pixels[:, shift:shift + exact], full[top:bottom, left:left + exact])


def test_grey_jpegs_decode_to_one_channel_or_three_equal_ones():
    data = photo_jpeg(mode="L")
    full = full_decode(data, "L")
    grey, shift = jpeg.decode_region(data, scale_num=8, left=40, top=30, right=90, bottom=70, grey=True)
    np.testing.assert_array_equal(grey[:, shift:shift + 50, 0], full[30:70, 40:90])
    rgb, shift = jpeg.decode_region(data, scale_num=8, left=40, top=30, right=90, bottom=70)
    np.testing.assert_array_equal(rgb[:, shift:shift + 50], np.repeat(full[30:70, 40:90, None], 3, axis=2))


def test_the_scale_is_the_smallest_simd_eighth_that_keeps_the_window_at_least_s():
    def crop(w, h):
        return Crop(left=0, top=0, width=w, height=h, flip=False)

    assert [jpeg.scale_for(crop(w, h), 224) for w, h in
            [(100, 100), (224, 224), (300, 250), (500, 447), (448, 448), (800, 500), (1000, 900), (1792, 1792),
             (4000, 3000)]] == [8, 8, 8, 8, 4, 4, 2, 1, 1]


@pytest.mark.parametrize("subsampling,progressive", [(2, False), (0, True)])
def test_at_full_scale_the_window_is_pillows_antialiased_resize_of_the_full_decode(subsampling, progressive):
    """The same pixels as ``Image.resize((S, S), BILINEAR, box)`` (torchvision's RandomResizedCrop on PIL)."""
    data = photo_jpeg(subsampling=subsampling, progressive=progressive)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    checked = 0
    for index in range(60):
        crop = train_crop(seed=3, epoch=0, index=index, width=487, height=351)
        for size in (224, 96, 17):
            if jpeg.scale_for(crop, size) != 8:
                continue
            got = jpeg.decode_window(data, crop, width=487, height=351, size=size, grey=False)
            want = np.asarray(full.resize((size, size), Image.Resampling.BILINEAR, box=crop.box))
            np.testing.assert_array_equal(got, want[:, ::-1] if crop.flip else want, err_msg=f"{index} {size}")
            checked += 1
    assert checked >= 60


def test_the_pipelines_two_decoders_agree_on_every_full_scale_window():
    data = photo_jpeg()
    for index in range(30):
        crop = train_crop(seed=0, epoch=1, index=index, width=487, height=351)
        if jpeg.scale_for(crop, 128) != 8:
            continue
        window, pillow = (decode(data, "p.jpg", Augment(image_size=128, jpeg_decoder=d), train=True, seed=0, epoch=1,
                                 index=index) for d in ("window", "pillow"))
        np.testing.assert_array_equal(window, pillow)


def test_a_scaled_decode_stays_close_to_pillows_antialiased_resize():
    """A window at least twice S is decoded at N/8 (libjpeg's scaled IDCT is the low-pass), then resampled:
    closer to Pillow's antialiased resize of a full decode than a resize without a low-pass would be."""
    data = photo_jpeg()
    full = Image.open(io.BytesIO(data)).convert("RGB")
    crop = Crop(left=10.5, top=3.25, width=470.0, height=340.0, flip=False)
    assert jpeg.scale_for(crop, 112) == 4
    got = jpeg.decode_window(data, crop, width=487, height=351, size=112, grey=False).astype(int)
    want = np.asarray(full.resize((112, 112), Image.Resampling.BILINEAR, box=crop.box)).astype(int)
    aliased = bilinear(np.asarray(full), crop.box, 112).astype(int)  # a 4x shrink without a low-pass
    assert np.abs(got - want).mean() < 0.5 * np.abs(aliased - want).mean()


def test_files_it_does_not_take_go_to_pillow_which_names_the_problem():
    data = photo_jpeg()
    assert jpeg.header(data) == (487, 351)
    assert jpeg.header(data[: len(data) // 2]) is None  # no end marker: a truncated file fails as a whole
    assert jpeg.header(b"\x89PNG\r\n") is None
    cmyk = io.BytesIO()
    Image.new("CMYK", (40, 30), (10, 20, 30, 40)).save(cmyk, "JPEG")
    assert jpeg.header(cmyk.getvalue()) is None
    augment = Augment(image_size=32)
    x = decode(cmyk.getvalue(), "cmyk.jpg", augment, train=True, seed=0, epoch=0, index=0)
    assert x.shape == (32, 32, 3)
    with pytest.raises(BadImageError, match="half.jpg"):
        decode(data[: len(data) // 2], "half.jpg", augment, train=True, seed=0, epoch=0, index=0)
    corrupt = bytearray(data)
    corrupt[len(data) // 2:len(data) // 2 + 400] = b"\xff\x00" * 200  # entropy data garbled, end marker kept
    corrupt[600:604] = b"\xff\xd0\xff\xd0"  # a restart marker where none belongs
    try:  # either decoder may accept garbled entropy data (libjpeg warns and goes on): the window
        decode(bytes(corrupt), "garbled.jpg", augment, train=True, seed=0, epoch=0, index=0)  # path must not crash
    except BadImageError as exc:
        assert "garbled.jpg" in str(exc)


def test_a_window_outside_the_scaled_image_is_refused():
    data = photo_jpeg()
    with pytest.raises(ValueError, match="outside"):
        jpeg.decode_region(data, scale_num=4, left=0, top=0, right=245, bottom=10)  # 487 * 4/8 -> 244 wide
    with pytest.raises(ValueError, match="outside"):
        jpeg.decode_region(data, scale_num=9, left=0, top=0, right=10, bottom=10)


def test_the_flip_mirrors_rows():
    data = photo_jpeg()
    crop = train_crop(seed=0, epoch=0, index=0, width=487, height=351)
    plain = jpeg.decode_window(data, Crop(crop.left, crop.top, crop.width, crop.height, False), width=487,
                               height=351, size=64, grey=False)
    mirrored = jpeg.decode_window(data, Crop(crop.left, crop.top, crop.width, crop.height, True), width=487,
                                  height=351, size=64, grey=False)
    np.testing.assert_array_equal(mirrored, plain[:, ::-1])
