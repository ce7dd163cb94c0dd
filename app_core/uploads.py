"""Uploads: the limits an upload must meet, its digest (the key of every shared cache) and
its decoding into an upright RGB image, each failure one clear message."""
from __future__ import annotations

import hashlib
from pathlib import Path

from model.preprocess import SUPPORTED_FORMATS, ImageError, decode_image

MAX_UPLOAD_MB = 20  # keep equal to server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 25_000_000  # 25 MP: a phone photo passes; a decompression bomb does not
UPLOAD_TYPES = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")


def image_digest(data: bytes) -> str:
    """The sha256 of the image bytes: the cache key of everything computed from them."""
    return hashlib.sha256(data).hexdigest()


def check_upload(data: bytes, name: str, limit_mb: float = MAX_UPLOAD_MB) -> None:
    """Refuse an empty or oversized upload before decoding it (the server limit can be lifted)."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); upload a {SUPPORTED_FORMATS} file")
    if len(data) > limit_mb * 1024 * 1024:
        raise ImageError(
            f"{name} is {len(data) / 1024 / 1024:.1f} MB, over the {limit_mb:g} MB upload limit; "
            "downscale or re-compress it (a JPEG of a few MB is plenty: the model sees 224 px)"
        )
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix not in UPLOAD_TYPES:
        raise ImageError(f"{name}: .{suffix} files are not supported; upload a {SUPPORTED_FORMATS} file")


def decode_upload(data: bytes, name: str):
    """Bytes → upright RGB PIL image, within the size and pixel limits, or ImageError."""
    check_upload(data, name)
    try:
        return decode_image(data, max_pixels=MAX_PIXELS, name=name)
    except ImageError:
        raise
    except (OSError, SyntaxError, EOFError, ValueError) as err:
        # Pillow can fail while reading the header (e.g. a PNG signature followed by junk),
        # before decode_image's own checks; it is the same problem for the person uploading.
        raise ImageError(f"{name} is truncated or corrupt ({err}); re-export or re-download it") from None
