"""load_model: dispatch, devices, the hub path, and errors that name what is wrong."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import load_model, resolve_device
from model.native import load_native, save_native


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_unknown_source_names_the_options():
    with pytest.raises(ValueError, match="neither a built-in model .* nor an existing path"):
        load_model("no-such-model-anywhere")


def test_missing_key_is_named(hf_models, tmp_path):
    d = copy_dir(hf_models["vit"][0], tmp_path / "m")
    state = load_file(str(d / "model.safetensors"))
    del state["vit.encoder.layer.1.attention.attention.key.weight"]
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match=r"lacks 'encoder\.layer\.1\.attention\.attention\.key\.weight'"):
        load_model(str(d))


def test_unexpected_key_is_named(hf_models, tmp_path):
    d = copy_dir(hf_models["vit"][0], tmp_path / "m")
    state = load_file(str(d / "model.safetensors"))
    state["vit.encoder.layer.0.attention.mystery.weight"] = torch.zeros(2)
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match=r"unexpected keys .*encoder\.layer\.0\.attention\.mystery\.weight"):
        load_model(str(d))


def test_shape_mismatch_is_named(hf_models, tmp_path):
    d = copy_dir(hf_models["vit"][0], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 64  # the weights have 96
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"shape mismatches \[blocks\.0\.mlp\.fc1\.bias: checkpoint \(96,\) vs model \(64,\)"):
        load_model(str(d))


def test_unsupported_family_is_refused(hf_models, tmp_path):
    d = copy_dir(hf_models["vit"][0], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "swin"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'swin' is not a supported ViT family"):
        load_model(str(d))


def test_pickled_bin_loads_weights_only(hf_models, tmp_path):
    directory, ref = hf_models["vit"]
    d = copy_dir(directory, tmp_path / "m")
    state = load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    torch.save(state, d / "pytorch_model.bin")
    model = load_model(str(d), device="cpu")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], ref(pixel_values=x).logits, atol=1e-4, rtol=0)


class NotTensors:
    """Any class: unpickling it would run code, which weights_only refuses."""


def test_pickle_with_code_is_refused(tmp_path):
    torch.save({"x": NotTensors()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="only weights-only checkpoints are loaded"):
        load_model(str(tmp_path / "evil.pth"))


def test_preprocessor_config_is_followed(hf_models, tmp_path):
    d = copy_dir(hf_models["dinov2"][0], tmp_path / "m")
    (d / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": 32}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": 28, "width": 28}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    }))
    model = load_model(str(d), device="cpu")
    pre = model.preprocessor
    assert pre.shortest_edge == 32 and pre.crop_size == (28, 28) and pre.resample == 3
    from PIL import Image

    img = Image.new("RGB", (64, 40), (255, 0, 0))
    pixels = pre([img])
    assert pixels.shape == (1, 3, 28, 28)
    torch.testing.assert_close(pixels[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]),
                               atol=1e-5, rtol=0)
    trace = model.trace([img])
    assert trace.grid == (4, 4)
    assert trace.image().shape == (28, 28, 3) and tuple(trace.image()[0, 0]) == (255, 0, 0)


def test_native_round_trip(tiny_vit, tmp_path):
    from model import Preprocessor

    tiny_vit.preprocessor = Preprocessor(resize_to=(24, 24))
    save_native(tiny_vit, tmp_path / "n")
    again = load_model(str(tmp_path / "n"), device="cpu")
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], tiny_vit(x)[0], atol=0, rtol=0)
    assert again.preprocessor == tiny_vit.preprocessor
    # a tampered file is caught by the strict loader
    state = load_file(str(tmp_path / "n" / "model.safetensors"))
    state["head.weight"] = state["head.weight"][:2]
    save_file(state, str(tmp_path / "n" / "model.safetensors"))
    with pytest.raises(ValueError, match="head.weight: checkpoint"):
        load_native(tmp_path / "n")


def test_hub_source_uses_snapshot_download(hf_models, monkeypatch):
    """hf:<repo> goes through huggingface_hub; here the download is a local directory, and the
    hub itself is switched off, so nothing can reach the network even if the fake were bypassed."""
    import huggingface_hub
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    directory, ref = hf_models["deit"]
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kw):
        calls.append((repo_id, allow_patterns))
        return str(directory)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = load_model("hf:someone/tiny-deit", device="cpu")
    assert calls and calls[0][0] == "someone/tiny-deit" and "model.safetensors" in calls[0][1]
    assert model.source == "hf:someone/tiny-deit"
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], ref(pixel_values=x).logits, atol=1e-4, rtol=0)


def test_hub_offline_error_is_one_clear_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing to fall back on
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"could not download hf:google/vit-base-patch16-224 .*check the repo id"):
        load_model("hf:google/vit-base-patch16-224")
    with pytest.raises(ValueError, match="is not a Hugging Face repo id: it needs exactly one '/'"):
        load_model("hf:a/b/c")


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
