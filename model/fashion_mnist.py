"""Read Fashion-MNIST from the IDX gzip files of the Debian package `dataset-fashion-mnist`.

The IDX format (LeCun's MNIST format) is a big-endian header — two zero bytes, a type
code (0x08 = unsigned byte), the number of dimensions — then one uint32 per dimension,
then the raw array in C order. Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence)
uses it for 28×28 grayscale images (light garment on a black background) and uint8 labels.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "install it with `sudo apt-get install dataset-fashion-mnist` or set $FASHION_MNIST_DIR"

# The ten classes, in label order (Xiao et al. 2017, Table 1).
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Per-pixel statistics of the 60,000 training images after scaling to [0, 1]; recomputed
# by `train_fashion` and checked by the tests, written here so inference needs no data.
MEAN = 0.2860
STD = 0.3530

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def data_dir() -> Path:
    return Path(os.environ.get("FASHION_MNIST_DIR", DEFAULT_DIR))


def available(directory: str | os.PathLike | None = None) -> bool:
    """True when all four IDX files are present."""
    d = Path(directory) if directory is not None else data_dir()
    return all((d / f).is_file() for pair in FILES.values() for f in pair)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one (optionally gzipped) IDX file into a numpy array, validating its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4:
        raise ValueError(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim < 1:
        raise ValueError(f"{path} does not start with an IDX header (got {data[:4].hex()}); is it the right file?")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path} header promises {dims} ({expected} bytes) but holds {len(data) - offset} bytes; "
            "the file is truncated or corrupt"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("=")) if dtype.byteorder == ">" else arr.copy()


def load_split(split: str, directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of the 'train' or 'test' split."""
    if split not in FILES:
        raise ValueError(f"split={split!r}; expected 'train' or 'test'")
    d = Path(directory) if directory is not None else data_dir()
    img_name, lbl_name = FILES[split]
    if not (d / img_name).is_file() or not (d / lbl_name).is_file():
        raise FileNotFoundError(f"Fashion-MNIST {split} files not found in {d}; {INSTALL_HINT}")
    images = read_idx(d / img_name)
    labels = read_idx(d / lbl_name).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"unexpected Fashion-MNIST {split} shapes: images {images.shape}, labels {labels.shape}")
    return images, labels
