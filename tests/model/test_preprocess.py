"""Safe decoding: every Pillow mode to RGB, EXIF orientation, bombs, truncation, non-images."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model import ImageError, Preprocessor, decode_image


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgba_is_composited_over_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (0, 0, 255, 255))
    out = decode_image(encode(img))
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (0, 0, 255)


def test_half_transparent_la_blends_with_white():
    img = Image.new("LA", (2, 2), (0, 128))
    assert decode_image(encode(img)).getpixel((0, 0)) == (127, 127, 127)


def test_palette_with_and_without_transparency():
    p = Image.new("P", (3, 3), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert decode_image(encode(p)).getpixel((0, 0)) == (10, 200, 30)
    p.info["transparency"] = 1
    assert decode_image(encode(p, transparency=1)).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg():
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    r, g, b = decode_image(encode(img, "JPEG", quality=95)).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_uses_full_range():
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = decode_image(encode(img))
    assert out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 0)


def test_float_image_is_stretched():
    arr = np.linspace(-1.0, 3.0, 16, dtype=np.float32).reshape(4, 4)
    out = decode_image(encode(Image.fromarray(arr, "F"), "TIFF"))
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((3, 3)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=100))
    assert out.size == (2, 6)
    assert sum(out.getpixel((1, 0))) > 600  # the white corner moved to the top right


def test_first_frame_of_animation():
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    r, g, b = decode_image(buf.getvalue()).getpixel((1, 1))
    assert r > 200 and g < 50


def test_too_many_pixels_is_refused_before_decoding():
    data = encode(Image.new("L", (3000, 2000)))
    with pytest.raises(ImageError, match=r"3000×2000 = 6\.0 MP, over the 5 MP limit; downscale it"):
        decode_image(data, max_pixels=5_000_000)


def test_truncated_file_is_refused():
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_png_cut_inside_its_header_is_refused():
    """Pillow raises a bare OSError from Image.open itself here; it must become an ImageError."""
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(encode(Image.new("RGB", (8, 8)))[:20])


def test_non_image_and_empty_are_refused():
    with pytest.raises(ImageError, match="not an image Patchlight can read; upload a PNG, JPEG"):
        decode_image(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(ImageError, match="is empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="no such file"):
        decode_image("/no/such/file.png")


def test_preprocessor_resize_crop_normalize():
    pre = Preprocessor(resize_to=None, shortest_edge=20, crop_size=(16, 16), resample=0,
                       image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5))
    img = Image.new("RGB", (40, 20), (255, 0, 128))
    x = pre([img])
    assert x.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(x[0, :, 5, 5].numpy(), [1.0, -1.0, 128 / 255 * 2 - 1], atol=1e-6)


@pytest.mark.parametrize("resample", [1, 2, 3])
@pytest.mark.parametrize("size", [(2400, 60), (60, 2400), (3000, 97), (97, 3000), (1000, 7), (7, 1000)])
def test_a_long_thin_image_is_resized_in_its_crops_window_only(size, resample, monkeypatch):
    """A shortest-edge resize then a center crop (DINOv2's and CLIP's processors): for a long, thin
    image the whole resize is enormous (a ~100-byte 40000×1 PNG would become 10,240,000×256 px,
    7.9 GB). Only the crop's window is resized, giving what resizing all and cropping gives."""
    rng = np.random.default_rng(size[0] * 7 + size[1])
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    pre = Preprocessor(resize_to=None, shortest_edge=256, crop_size=(224, 224), resample=resample)
    w, h = size
    s = 256 / min(w, h)
    whole = img.resize((round(w * s), round(h * s)), resample=resample)  # the reference: all, then the crop
    left, top = (whole.width - 224) // 2, (whole.height - 224) // 2
    expected = np.asarray(whole.crop((left, top, left + 224, top + 224)), dtype=int)
    made = []
    resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, sz, *a, **k: made.append(sz) or resize(self, sz, *a, **k))
    got = np.asarray(pre.prepare(img), dtype=int)
    assert got.shape == (224, 224, 3)
    assert np.abs(got - expected).max() <= 1 and (got != expected).mean() < 0.01  # rounding, in a few pixels
    assert made and max(a * b for a, b in made) <= 2 * 224 * 224 < whole.width * whole.height / 20, made  # no whole


def test_extreme_shapes_are_prepared_small_or_refused_with_what_to_do():
    crop = Preprocessor(resize_to=None, shortest_edge=256, crop_size=(224, 224), resample=3)
    for size in [(40000, 1), (1, 40000)]:
        assert crop.prepare(Image.new("RGB", size, (10, 200, 30))).getpixel((100, 100)) == (10, 200, 30)
    nearest = Preprocessor(resize_to=None, shortest_edge=256, crop_size=(224, 224), resample=0)
    assert nearest.prepare(Image.new("RGB", (3000, 50))).size == (224, 224)
    with pytest.raises(ImageError, match=r"40000×1 px.*10,240,000×256 px.*Crop it"):
        nearest.prepare(Image.new("RGB", (40000, 1)))  # no window-only resize with nearest: refused
    uncropped = Preprocessor(resize_to=None, shortest_edge=256)
    assert uncropped.prepare(Image.new("RGB", (1000, 260))).size == (985, 256)
    with pytest.raises(ImageError, match=r"2000×100 px.*5,120×256 px.*crops nothing.*at most 4 times"):
        uncropped.prepare(Image.new("RGB", (2000, 100)))  # the model would see 5,120×256 px, 6.6× the tokens
