"""The sample gallery: files present, small, credited, decodable; Fashion tiles are what they claim."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model import fashion_mnist as fm
from model.builtins import BUILTIN_NAMES
from model.gallery import SAMPLES_DIR, FASHION_TEST_INDEX, Sample, list_samples, sample_path
from model.preprocess import decode_image

SHIPPABLE = ("CC0 1.0", "Public domain", "Public domain (CC0 1.0)", "MIT")


def test_gallery_lists_photos_and_one_tile_per_class():
    samples = list_samples()
    assert all(isinstance(s, Sample) for s in samples)
    keys = [s.key for s in samples]
    assert len(keys) == len(set(keys)), "sample keys must be unique"
    photos = [s for s in samples if s.kind == "photo"]
    fashion = [s for s in samples if s.kind == "fashion"]
    assert {s.kind for s in samples} == {"photo", "fashion"}
    assert 6 <= len(photos) <= 10
    assert [s.label for s in fashion] == list(fm.CLASS_NAMES)
    assert [s.label_index for s in fashion] == list(range(10))
    for s in samples:
        assert s.suggested_model in BUILTIN_NAMES
        assert s.licence in SHIPPABLE, f"{s.key}: licence {s.licence!r} is not one we can ship"
        assert s.credit and s.title


def test_every_sample_file_exists_decodes_and_is_small():
    total = 0
    for s in list_samples():
        path = sample_path(s.key)
        assert path == s.path and path.is_file()
        total += path.stat().st_size
        img = decode_image(path)  # the app's own safe decoder
        with Image.open(path) as raw:
            fmt = raw.format
        if s.kind == "photo":
            assert fmt == "JPEG", f"{path.name} should be a JPEG"
            assert max(img.size) <= 512, f"{path.name} is {img.size}; the long side must be ≤ 512 px"
            assert path.stat().st_size < 150_000
        else:
            assert fmt == "PNG" and img.size == (28, 28)
    assert total < 1_000_000, f"the gallery is {total} bytes; keep it under 1 MB"


def test_attribution_credits_every_file():
    text = (SAMPLES_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for s in list_samples():
        assert s.path.name in text, f"{s.path.name} is not credited in samples/ATTRIBUTION.md"
    shipped = {p.name for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    assert shipped == {s.path.name for s in list_samples()}, "every image in samples/ must be in the gallery"


def test_unknown_sample_names_the_known_keys():
    with pytest.raises(ValueError, match="chelsea"):
        sample_path("no-such-sample")


@pytest.mark.skipif(not fm.available(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_tiles_are_the_first_test_image_of_each_class():
    images, labels = fm.load_split("test")
    for cls, s in enumerate(s for s in list_samples() if s.kind == "fashion"):
        first = int(np.flatnonzero(labels == cls)[0])
        assert FASHION_TEST_INDEX[cls] == first
        tile = np.asarray(Image.open(s.path))
        np.testing.assert_array_equal(tile, images[first])  # lossless PNG: bit-exact
