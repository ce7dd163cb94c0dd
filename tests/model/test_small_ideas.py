"""Small ideas written once in model/: flags, image suffixes, softmax, slugs (issue 9)."""
from __future__ import annotations

import numpy as np
import pytest

from model.env import env_flag, parse_flag
from model.naming import slug
from model.numerics import log_softmax, softmax


@pytest.mark.parametrize("text, value", [
    ("1", True), ("true", True), (" YES ", True), ("On", True), (True, True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False), ("  ", False), (None, False),
    (False, False), ("2", None), ("maybe", None), ("y", None),
])
def test_parse_flag(text, value):
    assert parse_flag(text) is value


def test_env_flag_reads_the_given_environment(monkeypatch):
    assert env_flag("X", {"X": "on"}) and not env_flag("X", {"X": "nah"}) and not env_flag("X", {})
    monkeypatch.setenv("PATCHLIGHT_TEST_FLAG", "yes")
    assert env_flag("PATCHLIGHT_TEST_FLAG")


def test_image_suffixes_are_defined_once():
    from model.preprocess import IMAGE_SUFFIXES, SUPPORTED_FORMATS

    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    words = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WebP", "bmp": "BMP", "gif": "GIF",
             "tif": "TIFF", "tiff": "TIFF"}
    assert {words[s[1:]] for s in IMAGE_SUFFIXES} == {"PNG", "JPEG", "WebP", "BMP", "GIF", "TIFF"}
    assert all(w in SUPPORTED_FORMATS for w in words.values())


def test_softmax_and_log_softmax_are_stable_and_agree():
    x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    p = softmax(x)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_allclose(np.exp(log_softmax(x)), p, atol=1e-12)
    assert np.isfinite(log_softmax(x)[0, :2]).all() and p[0, 0] == 1.0
    np.testing.assert_allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


@pytest.mark.parametrize("text, sep, expected", [
    ("T-shirt/top", "-", "t-shirt-top"),
    ("Ankle boot", "-", "ankle-boot"),
    ("Chefer et al.", "_", "chefer_et_al"),
    ("gradient rollout", "_", "gradient_rollout"),
    ("  --Hello,  World!--  ", "-", "hello-world"),
    ("café—crème", "-", "cafe-creme"),
    ("猫", "-", "item"),
    ("", "-", "item"),
])
def test_slug_rule(text, sep, expected):
    assert slug(text, sep=sep) == expected


def test_gallery_keys_are_unchanged_by_the_one_slug():
    from model.gallery import FASHION_FILES, sample_keys

    keys = sample_keys()
    assert "fashion-t-shirt-top" in keys and "fashion-ankle-boot" in keys
    assert FASHION_FILES[0] == "fashion-0-t-shirt-top.png" and FASHION_FILES[9] == "fashion-9-ankle-boot.png"
