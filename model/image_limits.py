"""What decoding an upload will cost, known before Pillow decodes it.

Two kinds of small file are expensive (security issue 13):

- **Memory.** The bytes a decode allocates follow from width × height and the *mode*, not
  from the file size: a 50 KB 16-bit PNG or a 100 KB float TIFF of 25 MP used to cost over
  500 MB. `decode_peak_bytes` adds up, per pixel, what Pillow allocates for the mode, what
  the format's decoder holds besides (a TIFF strip buffer, a progressive JPEG's DCT
  coefficients, WebP's two canvases, a run-length BMP's byte strings — each measured), the
  EXIF transposition and the conversion to RGB; the caller refuses the file when that
  exceeds its budget, before `load()` allocates anything.
- **Time.** Some structures cost a constant amount each, so a file made of thousands of
  them is slow however few pixels it has: JPEG scans (~0.6 ms each in libjpeg; 3,000 in a
  43 KB file took 2 s), JPEG header segments and fill bytes (5 MB of fill: 2 s), PNG chunks,
  TIFF strips and tags (Pillow handles each in Python: a 16 MB TIFF of 2 million one-row
  strips took 11 s and 700 MB), run-length BMP data (decoded in Python, 0.14 s per MB).
  `structure_problem` walks those headers — bounded loops, or a C-speed count — and names
  the first count over its limit. GIF extension blocks are left to Pillow (linear, ~0.1 s
  per MB); PNG text is capped by Pillow (1 MB a chunk, 64 MB in all) and here by count.

Only the formats the app accepts are opened (`FORMATS`): Pillow's other plugins (EPS runs
Ghostscript, and a dozen rarely used formats) are attack surface with no use here.
Multi-frame files are never walked: `Image.open` sits on frame 0, the only one used.
"""
from __future__ import annotations

import re

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG includes MPO (several pictures)

MAX_PNG_CHUNKS = 20_000  # libpng writes 8 KB IDAT chunks: a 20 MB PNG has ~2,500
MAX_PNG_COMPRESSED_TEXT = 32  # zTXt/iTXt/iCCP, each inflated up to 1 MB (PngImagePlugin.MAX_TEXT_CHUNK)
MAX_JPEG_HEADER_ITEMS = 1_000  # segments and fill bytes before the first scan; a camera writes ~20
MAX_JPEG_SCANS = 100  # a progressive JPEG has ~10; libjpeg-turbo's djpeg suggests -maxscans for more
MAX_TIFF_STRIPS = 65_536  # strips or tiles; a 25 MP scan with one-row strips has 5,000
MAX_TIFF_TAGS = 1_000  # entries in the first directory; a camera or scanner writes ~50
MAX_BMP_RLE_BYTES = 2 << 20  # run-length data Pillow decodes in Python (~0.35 s per MB)

# Temporaries of the block-wise conversion in preprocess.to_rgb: a few full-width row
# blocks of at most CONVERT_BLOCK_PIXELS pixels, ≤ 24 bytes each.
CONVERT_BLOCK_PIXELS = 1 << 18
CONVERT_SLACK_BYTES = 24 * CONVERT_BLOCK_PIXELS


# ---- memory ------------------------------------------------------------------------------------
def bytes_per_pixel(mode: str) -> int:
    """What Pillow allocates per pixel for `mode` (Storage.c: every multi-band mode is 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1  # "1" is stored as a byte per pixel too
    if mode.startswith("I;16"):
        return 2
    return 4  # I, F, and LA, PA, RGB, RGBA, RGBX, CMYK, YCbCr, LAB, HSV, …


def _jpeg_coefficient_bytes(img) -> float:
    """Per pixel: libjpeg keeps every DCT coefficient (2 bytes) of a multi-scan file."""
    layers = getattr(img, "layer", None) or []
    if not layers:
        return 2.0 * len(img.getbands())
    h_max = max(h for _, h, _, _ in layers)
    v_max = max(v for _, _, v, _ in layers)
    return 2.0 * sum(h * v / (h_max * v_max) for _, h, v, _ in layers) * 1.05  # padding to whole MCUs


def _tiff_extra_bytes(img) -> float:
    """Per pixel: libtiff decodes one strip or tile into a buffer of its own, and reads
    JPEG/YCbCr TIFFs through a full-size RGBA raster. Odd tags count as a second image."""
    tags = getattr(img, "tag_v2", None)
    width, height = img.size
    if tags is None or width * height == 0:
        return 4.0

    def number(tag: int, default: int) -> int:
        value = tags.get(tag, default)
        return int(value[0] if isinstance(value, tuple) else value)

    try:
        bits = tags.get(258, (8,))
        bits_per_pixel = sum(bits) if isinstance(bits, tuple) else int(bits) * number(277, 1)
        if 322 in tags and 323 in tags:  # tiled
            block_pixels = number(322, 0) * number(323, 0)
        else:
            block_pixels = min(number(278, height), height) * width
        extra = block_pixels * bits_per_pixel / 8 / (width * height)
        if number(259, 1) in (6, 7) or number(262, 1) == 6:  # (old-)JPEG, YCbCr
            extra += 4.0
    except (TypeError, ValueError, IndexError):
        return max(4.0, 4.0 * len(img.getbands()))
    return extra


def format_bytes_per_pixel(img, scans: int = 0) -> tuple[float, float]:
    """(held while loading, still held after) per pixel by the format's decoder, beyond the image."""
    fmt = getattr(img, "format", None)
    if fmt in ("JPEG", "MPO") and (img.info.get("progressive") or scans > 1):
        return _jpeg_coefficient_bytes(img), 0.0
    if fmt == "WEBP":
        return 12.0, 8.0  # libwebp's two canvases, kept until the file closes, + the frame as bytes
    if fmt == "TIFF":
        return _tiff_extra_bytes(img), 0.0
    if fmt == "BMP" and img.info.get("compression") in (1, 2):
        return 2.0, 0.0  # RLE: a bytearray of every pixel and its bytes() copy
    return 0.0, 0.0


def decode_peak_bytes(img, scans: int = 0) -> int:
    """The most memory `preprocess.decode_image` holds at once for this opened, unloaded image.

    peak = W·H · max(load, transpose, convert), per pixel, b = bytes_per_pixel(mode):
      load      = b + what the decoder holds while decoding
      transpose = b + what it still holds + b   (EXIF orientation: a transposed copy)
      convert   = b + what it still holds + 4   (the RGB result, filled block by block, or
                                                 a plain copy that lets the decoder go)
    The transpose term is always counted: the orientation of a PNG is only known after its
    pixels are read, and it dominates for RGB images alone (8 bytes per pixel).
    """
    width, height = img.size
    b = bytes_per_pixel(img.mode)
    while_loading, after = format_bytes_per_pixel(img, scans)
    load = b + while_loading
    transpose = b + after + b
    convert = b + after + 4 if img.mode != "RGB" or after else 0  # WebP RGB: a plain copy
    return int(width * height * max(load, transpose, convert)) + (CONVERT_SLACK_BYTES if convert else 0)


# ---- time -------------------------------------------------------------------------------------
def structure_problem(data: bytes) -> str | None:
    """Why the file's structure would take too long to parse, or None. Bounded work."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_problem(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_problem(data)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return _tiff_problem(data)
    if data.startswith(b"BM"):
        return _bmp_problem(data)
    return None


def jpeg_scans(data: bytes) -> int:
    """Start-of-scan markers (FF DA). Entropy-coded data stuffs every FF with 00, so only
    metadata (an EXIF thumbnail) can add to the true count; over-counting is harmless."""
    return data.count(b"\xff\xda")


def _png_problem(data: bytes) -> str | None:
    pos, chunks, compressed = 8, 0, 0
    while pos + 8 <= len(data):
        kind = data[pos + 4:pos + 8]
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            return f"has more than {MAX_PNG_CHUNKS:,} PNG chunks"
        if kind in (b"zTXt", b"iTXt", b"iCCP"):
            compressed += 1
            if compressed > MAX_PNG_COMPRESSED_TEXT:
                return f"has more than {MAX_PNG_COMPRESSED_TEXT} compressed text or profile chunks"
        if kind in (b"IEND", b"fdAT"):  # the end, or a later animation frame (never read)
            break
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")
    return None


_FILL = re.compile(rb"\xff+")


def _jpeg_problem(data: bytes) -> str | None:
    pos, items = 2, 0
    while pos + 4 <= len(data):
        run = _FILL.match(data, pos)
        if run is None:
            break  # junk where a marker belongs: Pillow names the error
        items += run.end() - pos  # every fill byte costs Pillow a loop, like a segment
        if items > MAX_JPEG_HEADER_ITEMS:
            return f"has more than {MAX_JPEG_HEADER_ITEMS:,} JPEG header segments"
        pos = run.end()
        if pos >= len(data):
            break
        marker = data[pos]
        if marker == 0xDA:  # start of scan: libjpeg (C) reads the rest
            break
        if 0xD0 <= marker <= 0xD8 or marker in (0x00, 0x01):  # no length (00: a stray escaped FF)
            pos += 1
            continue
        pos += 1 + int.from_bytes(data[pos + 1:pos + 3], "big")
    scans = jpeg_scans(data)
    if scans > MAX_JPEG_SCANS:
        return f"has {scans:,} JPEG scans (a progressive JPEG has about 10; the limit is {MAX_JPEG_SCANS})"
    return None


def _tiff_problem(data: bytes) -> str | None:
    order = "little" if data[:2] == b"II" else "big"
    big = data[2:4] in (b"+\0", b"\0+")  # BigTIFF: 8-byte offsets and counts

    def num(at: int, size: int) -> int:
        return int.from_bytes(data[at:at + size], order)

    ifd = num(8, 8) if big else num(4, 4)
    count_size, entry_size, field = (8, 20, 8) if big else (2, 12, 4)
    if ifd + count_size > len(data):
        return None  # Pillow says what is wrong
    entries = num(ifd, count_size)
    if entries > MAX_TIFF_TAGS:
        return f"has {entries:,} TIFF tags in one directory (the limit is {MAX_TIFF_TAGS:,})"
    entries = min(entries, (len(data) - ifd - count_size) // entry_size)
    for i in range(entries):
        at = ifd + count_size + i * entry_size
        if num(at, 2) in (273, 324):  # StripOffsets, TileOffsets
            strips = num(at + 4, field)
            if strips > MAX_TIFF_STRIPS:
                return f"has {strips:,} TIFF strips or tiles (the limit is {MAX_TIFF_STRIPS:,})"
    return None


def _bmp_problem(data: bytes) -> str | None:
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return None  # an OS/2 header has no compression field
    compression = int.from_bytes(data[30:34], "little")
    offset = int.from_bytes(data[10:14], "little")
    if compression in (1, 2) and len(data) - offset > MAX_BMP_RLE_BYTES:
        return (f"holds {(len(data) - offset) / 2**20:.1f} MB of BMP run-length data (the limit is "
                f"{MAX_BMP_RLE_BYTES / 2**20:.0f} MB)")
    return None
