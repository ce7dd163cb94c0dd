"""Security issue 13: a decode's memory and time are bounded before Pillow allocates.

The attack files are built here, in memory, by streaming constant rows through zlib: a
25 MP 16-bit PNG is 50 KB and costs the builder no more than one row. Peak memory is
measured in a subprocess from the kernel's high-water mark (VmHWM, reset through
/proc/self/clear_refs), because Pillow's buffers are invisible to tracemalloc.
"""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import GifImagePlugin, Image

from model import ImageError, decode_image
from model import image_limits as limits
from model.preprocess import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20


# ---- attack-file builders ---------------------------------------------------------------------
def _zeros_deflated(row_bytes: int, rows: int, prefix: bytes = b"") -> bytes:
    """zlib of `rows` rows of `prefix` + zero bytes, fed one MB at a time."""
    row = prefix + bytes(row_bytes)
    z = zlib.compressobj(6)
    per_feed = max(1, MB // len(row))
    parts = [z.compress(row * min(per_feed, rows - done)) for done in range(0, rows, per_feed)]
    return b"".join(parts) + z.flush()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, color_type: int = 0, bit_depth: int = 8, *, palette: bytes | None = None,
        trns: bytes | None = None, extra: list[bytes] = (), idat: bytes | None = None) -> bytes:
    """A PNG of black rows (filter 0): any size, a few KB."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    if idat is None:
        idat = _zeros_deflated((width * channels * bit_depth + 7) // 8, height, prefix=b"\0")
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    chunks = [_chunk(b"IHDR", ihdr), *extra]
    chunks += [_chunk(b"PLTE", palette)] if palette is not None else []
    chunks += [_chunk(b"tRNS", trns)] if trns is not None else []
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def tiff(width: int, height: int, *, bits: int = 32, sample_format: int = 3, samples: int = 1,
         photometric: int = 1, rows_per_strip: int | None = None, compression: int = 8) -> bytes:
    """A little-endian TIFF of zero samples (float32 grayscale by default) in deflate strips."""
    rows_per_strip = rows_per_strip or height
    row_bytes = width * samples * bits // 8
    strips = []
    for top in range(0, height, rows_per_strip):
        rows = min(rows_per_strip, height - top)
        strips.append(_zeros_deflated(row_bytes, rows) if compression == 8 else bytes(row_bytes * rows))
    n = len(strips)
    offsets = list(np.cumsum([8] + [len(s) for s in strips[:-1]]))
    arrays_at = 8 + sum(len(s) for s in strips)
    bps_at = arrays_at + 8 * n
    ifd_at = bps_at + 2 * samples

    def entry(tag, kind, count, value):  # value: 4 bytes, inline or an offset
        return struct.pack("<HHI", tag, kind, count) + value

    def short(v):
        return struct.pack("<HH", v, 0)

    def long(v):
        return struct.pack("<I", v)

    entries = [
        entry(256, 4, 1, long(width)), entry(257, 4, 1, long(height)),
        entry(258, 3, samples, short(bits) if samples == 1 else long(bps_at)),
        entry(259, 3, 1, short(compression)), entry(262, 3, 1, short(photometric)),
        entry(273, 4, n, long(offsets[0]) if n == 1 else long(arrays_at)),
        entry(277, 3, 1, short(samples)), entry(278, 4, 1, long(rows_per_strip)),
        entry(279, 4, n, long(len(strips[0])) if n == 1 else long(arrays_at + 4 * n)),
        entry(339, 3, 1, short(sample_format)),
    ]
    return (b"II*\0" + long(ifd_at) + b"".join(strips)
            + struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *(len(s) for s in strips))
            + struct.pack(f"<{samples}H", *[bits] * samples)
            + struct.pack("<H", len(entries)) + b"".join(entries) + long(0))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def progressive_jpeg_with_scans(extra_scans: int) -> bytes:
    """A small progressive JPEG whose second AC scan is repeated `extra_scans` times."""
    data = encode(Image.new("RGB", (64, 64), (90, 120, 200)), "JPEG", progressive=True)
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"]
    scan = data[starts[2]:starts[3]]
    return data[:starts[3]] + scan * extra_scans + data[starts[3]:]


# ---- the pixel cap ------------------------------------------------------------------------------
def test_one_pixel_cap_for_app_and_cli():
    assert DEFAULT_MAX_PIXELS == 25_000_000
    from app_core import uploads  # the app layer uses the same cap

    assert uploads.MAX_PIXELS is DEFAULT_MAX_PIXELS
    w, h = 5001, 5000  # 25.005 MP: one row over, refused from the header alone
    with pytest.raises(ImageError, match=r"5001×5000 = 25\.0 MP, over the 25 MP limit"):
        decode_image(png(w, h))


# ---- memory: refused from the header, with the reason -----------------------------------------
def test_over_budget_is_refused_naming_size_mode_and_limit():
    data = png(4000, 4000, 0, 16)  # 16-bit grayscale, 31 KB
    assert len(data) < 40_000
    msg = (r"scan\.png would need ~\d+ MB to decode \(4000×4000 I;16 PNG\); the limit is 64 MB — "
           r"downscale it or save it as 8-bit RGB/JPEG")
    with pytest.raises(ImageError, match=msg):
        decode_image(data, name="scan.png", max_decode_bytes=64 * MB)


@pytest.mark.parametrize("build, expected", [
    (lambda: tiff(5000, 5000, bits=16, sample_format=1, samples=4, photometric=2), "5000×5000 RGBA TIFF"),
    (lambda: encode(Image.new("RGB", (5000, 5000), (10, 20, 30)), "WEBP", lossless=True, method=0),
     "5000×5000 RGB WEBP"),
])
def test_formats_that_hold_extra_buffers_are_refused_at_the_default_budget(build, expected):
    data = build()
    assert len(data) < 400_000
    with pytest.raises(ImageError, match=rf"would need ~\d+ MB to decode \({expected}\); the limit is 256 MB"):
        decode_image(data)


def test_estimate_counts_mode_and_format():
    def peak(data):
        img = Image.open(io.BytesIO(data))
        return limits.decode_peak_bytes(img, limits.jpeg_scans(data) if img.format == "JPEG" else 0)

    px = 1000 * 1000
    gray16 = peak(png(1000, 1000, 0, 16))
    assert gray16 == 2 * px + 4 * px + limits.CONVERT_SLACK_BYTES  # source + RGB result
    assert peak(png(1000, 1000, 2, 8)) == 8 * px  # RGB: the EXIF transpose copy

    def while_loading(data):
        return limits.format_bytes_per_pixel(Image.open(io.BytesIO(data)))[0]

    assert while_loading(tiff(1000, 1000)) == 4.0  # libtiff's buffer for the one float strip
    assert while_loading(tiff(1000, 1000, rows_per_strip=16)) == pytest.approx(16 * 1000 * 4 / px)
    rgba16 = tiff(1000, 1000, bits=16, sample_format=1, samples=4, photometric=2)
    assert peak(rgba16) == 12 * px + limits.CONVERT_SLACK_BYTES  # 4 for the image + 8 for the 16-bit strip
    baseline = encode(Image.new("RGB", (1000, 1000)), "JPEG", subsampling=0)
    progressive = encode(Image.new("RGB", (1000, 1000)), "JPEG", subsampling=0, progressive=True)
    assert peak(progressive) >= 10 * px > peak(baseline)  # + 2 bytes × 3 DCT coefficients


# ---- memory: legitimate 16-bit and float images still decode, the same as before ----------------
def test_sixteen_bit_gradient_maps_exactly():
    values = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    out = np.asarray(decode_image(encode(Image.fromarray(values), "PNG")))
    expected = np.floor(values.astype(np.float64) / 65535 * 255 + 0.5).astype(np.uint8)
    assert out.shape == (64, 64, 3)
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_float_and_int_images_across_conversion_blocks():
    """Wider and taller than one conversion block: the range is taken over the whole image."""
    h, w = 600, 700  # 420k pixels > one block
    ramp = np.linspace(-5.0, 5.0, h * w, dtype=np.float32).reshape(h, w)
    ramp[0, 0], ramp[0, 1] = np.nan, np.inf
    out = np.asarray(decode_image(encode(Image.fromarray(ramp, "F"), "TIFF")))[..., 0]
    assert out[0, 0] == 0 and out[0, 1] == 255 and out[-1, -1] == 255 and out[1, 0] <= 1
    assert (np.diff(out[1:].reshape(-1).astype(int)) >= 0).all()  # monotone across block edges
    ints = (np.arange(h * w, dtype=np.int32).reshape(h, w) - 1000) * 7
    out = np.asarray(decode_image(encode(Image.fromarray(ints, "I"), "TIFF")))[..., 0]
    assert out.min() == 0 and out.max() == 255 and out[h // 2, 0] in (127, 128)


def test_transparency_is_composited_block_by_block():
    img = Image.new("LA", (900, 700), (0, 0))
    img.paste((0, 255), (0, 0, 900, 350))  # opaque black top half, transparent bottom
    out = decode_image(encode(img, "PNG"))
    assert out.getpixel((450, 100)) == (0, 0, 0) and out.getpixel((450, 600)) == (255, 255, 255)


def test_caller_image_is_not_mutated():
    img = Image.new("RGB", (6, 2))
    exif = img.getexif()
    exif[0x0112] = 6
    img.info["exif"] = exif.tobytes()
    out = decode_image(img)
    assert out.size == (2, 6) and img.size == (6, 2)


# ---- time: structures that are slow by count are refused before Pillow parses them -----------------
@pytest.mark.parametrize("build, message", [
    (lambda: progressive_jpeg_with_scans(300), r"has 3\d\d JPEG scans"),
    (lambda: (lambda d: d[:2] + b"\xff" * 5000 + d[2:])(encode(Image.new("RGB", (8, 8)), "JPEG")),
     "more than 1,000 JPEG header segments"),
    (lambda: (lambda d: d[:2] + b"\xff\xfe\x00\x02" * 2000 + d[2:])(encode(Image.new("RGB", (8, 8)), "JPEG")),
     "more than 1,000 JPEG header segments"),
    (lambda: png(8, 8, extra=[_chunk(b"abCd", b"")] * 20_001), "more than 20,000 PNG chunks"),
    (lambda: png(8, 8, extra=[_chunk(b"zTXt", b"k\0\0" + zlib.compress(bytes(MB - 1), 9))] * 33),
     "more than 32 compressed text or profile chunks"),
    (lambda: tiff(1, 70_000, bits=8, sample_format=1, rows_per_strip=1, compression=1),
     "has 70,000 TIFF strips or tiles"),
])
def test_slow_structures_are_refused_quickly(build, message):
    data = build()
    start = time.perf_counter()
    with pytest.raises(ImageError, match=message + ".*which makes it slow to decode; re-save it"):
        decode_image(data)
    assert time.perf_counter() - start < 0.5


def test_ordinary_structures_pass():
    progressive = encode(Image.effect_noise((640, 480), 60).convert("RGB"), "JPEG", progressive=True)
    assert 5 <= limits.jpeg_scans(progressive) <= limits.MAX_JPEG_SCANS
    assert decode_image(progressive).size == (640, 480)
    striped = tiff(64, 5000, bits=8, sample_format=1, rows_per_strip=1)  # 5,000 one-row strips
    assert decode_image(striped).size == (64, 5000)


def test_run_length_bmp_over_its_limit_is_refused():
    width, height = 2500, 1000
    rows = (b"\x01\x00" * width + b"\x00\x00") * height  # one-pixel runs: the slowest kind
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    offset = 14 + len(info) + 1024
    data = b"BM" + struct.pack("<IHHI", offset + len(rows) + 2, 0, 0, offset) + info + bytes(1024) + rows + b"\0\1"
    with pytest.raises(ImageError, match="MB of BMP run-length data"):
        decode_image(data)


def test_many_frames_are_never_walked(monkeypatch):
    frames = [Image.new("P", (2, 2), i % 2) for i in range(4000)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    seen = []
    real_seek = GifImagePlugin.GifImageFile._seek

    def counting_seek(self, frame, *args, **kwargs):
        seen.append(frame)
        return real_seek(self, frame, *args, **kwargs)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", counting_seek)
    start = time.perf_counter()
    decode_image(data)
    assert time.perf_counter() - start < 0.5
    assert set(seen) <= {0}  # only the first frame is read
    apng = encode(Image.new("RGB", (4, 4)), "PNG", save_all=True,
                  append_images=[Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(1, 255)])
    assert decode_image(apng).getpixel((0, 0)) == (0, 0, 0)


def test_only_supported_formats_are_opened():
    ppm = encode(Image.new("RGB", (4, 4)), "PPM")  # Pillow reads it; Patchlight does not offer it
    with pytest.raises(ImageError, match="not an image Patchlight can read"):
        decode_image(ppm)


# ---- measured: peak memory of refusals and of accepted 25 MP decodes ---------------------------------
MEASURE = r"""
import ctypes, gc, json, re, sys
from model.preprocess import decode_image
from model import image_limits
from PIL import Image
import io
libc = ctypes.CDLL("libc.so.6")

def status(key):
    return int(re.search(rf"{key}:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024

results = {}
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    gc.collect(); libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    base = status("VmRSS")
    try:
        img = decode_image(data)
        outcome = "ok"
    except ValueError as err:
        outcome = str(err)
    peak = status("VmHWM") - base
    opened = Image.open(io.BytesIO(data))
    results[path] = {"peak": peak, "outcome": outcome, "estimate": image_limits.decode_peak_bytes(opened)}
    img = opened = None
print(json.dumps(results))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_peak_memory_of_25_megapixel_attacks(tmp_path):
    files = {
        # refused: nothing big is allocated
        "webp.webp": encode(Image.new("RGB", (5000, 5000), (10, 20, 30)), "WEBP", lossless=True, method=0),
        "rgba16.tif": tiff(5000, 5000, bits=16, sample_format=1, samples=4, photometric=2),
        # accepted: the peak stays within the estimate, and the estimate within the budget
        "gray16.png": png(5000, 5000, 0, 16),  # was +576 MB
        "float.tif": tiff(5000, 5000),  # was +628 MB
        "palette-1bit-transparent.png": png(5000, 5000, 3, 1, palette=b"\0\0\0\xff\xff\xff", trns=b"\0"),  # +525
        "gray-alpha.png": png(5000, 5000, 4, 8),  # was +500 MB
    }
    paths = []
    for name, data in files.items():
        assert len(data) < 400_000, name
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    try:
        Path("/proc/self/clear_refs").open("w").close()
    except OSError:
        pytest.skip("cannot reset the peak-memory counter here")
    run = subprocess.run([sys.executable, "-c", MEASURE, *paths], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    results = {Path(k).name: v for k, v in json.loads(run.stdout.splitlines()[-1]).items()}
    for name in ("webp.webp", "rgba16.tif"):
        assert "would need" in results[name]["outcome"], results[name]
        assert results[name]["peak"] < 50 * MB, (name, results[name]["peak"] / MB)
    for name in ("gray16.png", "float.tif", "palette-1bit-transparent.png", "gray-alpha.png"):
        r = results[name]
        assert r["outcome"] == "ok", (name, r)
        assert r["estimate"] <= DEFAULT_MAX_DECODE_BYTES
        assert r["peak"] < 1.1 * r["estimate"] + 8 * MB, (name, r["peak"] / MB, r["estimate"] / MB)
