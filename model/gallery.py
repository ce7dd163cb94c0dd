"""The sample gallery shipped in `samples/`: public-domain / CC0 photos and Fashion-MNIST tiles.

Every file is credited in `samples/ATTRIBUTION.md`; `samples/build_gallery.py` rebuilds them.
Photos (from scikit-image's bundled data) suit `dinov2-small`; the ten 28×28 tiles — the
first test image of each Fashion-MNIST class — suit `fashion-vit` and carry their true label,
so the loss step has something to compare against.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .fashion_mnist import CLASS_NAMES
from .naming import slug

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

SKIMAGE = "scikit-image 0.26.0 bundled data (skimage/data)"

# key -> (file, title, credit, licence)
_PHOTOS = {
    "chelsea": ("chelsea.jpg", "Chelsea the cat", f"Stefan van der Walt, via {SKIMAGE}", "CC0 1.0"),
    "coffee": ("coffee.jpg", "Coffee cup", f"Rachel Michetti, courtesy of Pikolo Espresso Bar, via {SKIMAGE}", "CC0 1.0"),
    "astronaut": ("astronaut.jpg", "Astronaut Eileen Collins", f"NASA (Great Images in NASA), via {SKIMAGE}", "Public domain"),
    "rocket": ("rocket.jpg", "Falcon 9 launching DSCOVR", f"SpaceX, via {SKIMAGE}", "Public domain (CC0 1.0)"),
    "camera": ("camera.jpg", "Cameraman (grayscale)", f"Lav Varshney, via {SKIMAGE}", "CC0 1.0"),
    "hubble": ("hubble_deep_field.jpg", "Hubble eXtreme Deep Field", f"NASA / HubbleSite, via {SKIMAGE}", "Public domain"),
    "retina": ("retina.jpg", "Human retina (fundus photograph)", f"Mikael Häggström, Wikimedia Commons, via {SKIMAGE}", "CC0 1.0"),
    "horse": ("horse.jpg", "Horse silhouette (clip art)", f"Andreas Preuss (marauder), openclipart, via {SKIMAGE}", "CC0 1.0"),
}

# output file -> source file in skimage/data (used by samples/build_gallery.py)
PHOTO_SOURCES = {
    "chelsea.jpg": "chelsea.png",
    "coffee.jpg": "coffee.png",
    "astronaut.jpg": "astronaut.png",
    "rocket.jpg": "rocket.jpg",
    "camera.jpg": "camera.png",
    "hubble_deep_field.jpg": "hubble_deep_field.jpg",
    "retina.jpg": "retina.jpg",
    "horse.jpg": "horse.png",
}


# One 28×28 PNG per class, in label order; the index is the test-set position of the image.
FASHION_FILES = tuple(f"fashion-{i}-{slug(n)}.png" for i, n in enumerate(CLASS_NAMES))
FASHION_TEST_INDEX = (19, 2, 1, 13, 6, 8, 4, 9, 18, 0)  # first test image of each class


@dataclass(frozen=True)
class Sample:
    """One gallery image. `label` is the true class name for Fashion-MNIST tiles, else None."""

    key: str
    title: str
    path: Path
    kind: str  # "photo" | "fashion"
    credit: str
    licence: str
    suggested_model: str
    label: str | None = None
    label_index: int | None = None


def list_samples() -> list[Sample]:
    """Every sample, photos first, then the Fashion-MNIST tiles in label order."""
    out = [
        Sample(key, title, SAMPLES_DIR / file, "photo", credit, licence, "dinov2-small")
        for key, (file, title, credit, licence) in _PHOTOS.items()
    ]
    for i, (name, file) in enumerate(zip(CLASS_NAMES, FASHION_FILES)):
        out.append(
            Sample(
                key=f"fashion-{slug(name)}",
                title=f"{name} (Fashion-MNIST)",
                path=SAMPLES_DIR / file,
                kind="fashion",
                credit=f"Fashion-MNIST test image #{FASHION_TEST_INDEX[i]} (Zalando Research, Xiao et al. 2017)",
                licence="MIT",
                suggested_model="fashion-vit",
                label=name,
                label_index=i,
            )
        )
    return out


def sample_keys() -> list[str]:
    return [s.key for s in list_samples()]


def get_sample(key: str) -> Sample:
    for s in list_samples():
        if s.key == key:
            return s
    raise ValueError(f"unknown sample {key!r}; expected one of {sample_keys()}")


def sample_path(key: str) -> Path:
    """The file of sample `key`; ValueError naming the known keys when it does not exist."""
    s = get_sample(key)
    if not s.path.is_file():
        raise ValueError(f"sample {key!r} should be at {s.path} but the file is missing; restore samples/ from git")
    return s.path
