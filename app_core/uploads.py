"""Uploads: the limits an upload must meet, its digest (the key of every shared cache) and
its decoding into an upright RGB image, each failure one clear message."""
from __future__ import annotations

import hashlib
from pathlib import Path

from model.preprocess import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, SUPPORTED_FORMATS, ImageError, decode_image

MAX_UPLOAD_MB = 20  # keep equal to server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = DEFAULT_MAX_PIXELS  # the one pixel cap (model.preprocess), for the app and the CLI alike
UPLOAD_TYPES = tuple(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)  # what the uploader accepts


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


# ----------------------------------------------------------------------------- upload quotas

# Streamlit keeps every file a session PUTs, under file ids the client chooses, until the
# session ends. Without a bound one visitor stored 30 × 19 MB in two seconds (issue 13).
# The image, a settings file, one more while the image is replaced, and a batch of teaching
# examples (the Teach page takes up to 20 images per class at once, copies them shrunk to
# 448 px into the session and lets the uploader forget them); the bytes stay bounded below.
MAX_SESSION_FILES = 24
MAX_SESSION_MB = 2 * MAX_UPLOAD_MB
TOTAL_UPLOAD_ENV = "PATCHLIGHT_UPLOAD_TOTAL_MB"
DEFAULT_TOTAL_UPLOAD_MB = 1024


class UploadRefused(Exception):
    """An upload over the server-wide quota; the message says what to do."""


def total_upload_limit_mb(environ=None) -> float:
    """The server-wide bound on uploads held at once (``PATCHLIGHT_UPLOAD_TOTAL_MB``)."""
    import os

    raw = (os.environ if environ is None else environ).get(TOTAL_UPLOAD_ENV, "")
    try:
        return float(raw) if raw.strip() else float(DEFAULT_TOTAL_UPLOAD_MB)
    except ValueError:
        return float(DEFAULT_TOTAL_UPLOAD_MB)


def files_to_evict(held: list[tuple[str, int]], new_size: int) -> list[str]:
    """The file ids (oldest first) a session drops so that the new file fits its quota.

    `held`: (file id, size in bytes) of the session's other files, oldest first. A session
    keeps its newest files: uploading a new image replaces the old one rather than failing.
    """
    limit = MAX_SESSION_MB * 1024 * 1024
    kept = list(held)
    evict: list[str] = []
    while kept and (len(kept) + 1 > MAX_SESSION_FILES or sum(size for _, size in kept) + new_size > limit):
        evict.append(kept.pop(0)[0])
    return evict


def check_total(total_bytes: int, new_size: int, limit_mb: float | None = None) -> None:
    """Refuse a file that would take the server's held uploads over the limit."""
    limit_mb = total_upload_limit_mb() if limit_mb is None else limit_mb
    if total_bytes + new_size > limit_mb * 1024 * 1024:
        raise UploadRefused(
            f"the server holds {total_bytes / 1024 / 1024:.0f} MB of visitors' uploads and this file "
            f"({new_size / 1024 / 1024:.1f} MB) would take it over its limit of {limit_mb:g} MB; "
            "try again in a minute, or pick a sample from the gallery")


def image_notes(data: bytes, input_size: tuple[int, int]) -> list[str]:
    """What a person should know about how their image was used: only the first frame of an
    animation, or a tiny image enlarged many times. Reads the header only (cheap)."""
    import io

    from PIL import Image

    notes: list[str] = []
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if getattr(img, "is_animated", False):  # seeks to the second frame only
                notes.append("This is an animation: Patchlight uses its first frame.")
    except (OSError, SyntaxError, ValueError):
        return notes
    target = min(int(v) for v in input_size)
    if min(width, height) * 4 <= target:
        notes.append(f"This image is only {width}×{height} px; it was enlarged to the model's {input_size[0]}×"
                     f"{input_size[1]} px input, so each patch holds few real pixels.")
    return notes
