"""Rebuild the sample gallery (run once by a maintainer; the app only reads the results).

    python samples/build_gallery.py --skimage-data DIR

DIR is `skimage/data` from an unpacked scikit-image wheel (0.26.0 was used). Photos are
resized so the long side is at most 512 px and saved as JPEG quality 85; the Fashion-MNIST
tiles are the first test image of each class, saved losslessly as 28×28 PNG.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from model import fashion_mnist as fm  # noqa: E402
from model.gallery import FASHION_FILES, PHOTO_SOURCES  # noqa: E402
from model.preprocess import to_rgb  # noqa: E402

LONG_SIDE = 512


def build_photos(src: Path) -> None:
    for out_name, src_name in PHOTO_SOURCES.items():
        img = Image.open(src / src_name)
        img.load()
        if img.mode not in ("RGB", "L"):
            img = to_rgb(img)  # transparency over white, as uploads are treated
        scale = LONG_SIDE / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        img.save(HERE / out_name, "JPEG", quality=85, optimize=True, progressive=False)


def build_fashion() -> None:
    images, labels = fm.load_split("test")
    for cls, name in enumerate(FASHION_FILES):
        first = int((labels == cls).nonzero()[0][0])
        Image.fromarray(images[first], "L").save(HERE / name, optimize=True)
        print(f"{name}: test image #{first}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skimage-data", type=Path, required=True)
    args = ap.parse_args()
    build_photos(args.skimage_data)
    build_fashion()


if __name__ == "__main__":
    main()
