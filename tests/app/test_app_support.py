"""app_core: the app's Streamlit-free glue, tested without streamlit on a tiny random ViT.

The tiny model (conftest.tiny_vit) has registers and a class head, so every path — prefix
tokens, gradients, losses — is exercised in a fraction of a second.
"""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from model import ImageError, Preprocessor, attention_rollout, patch_map
from app_core import clicks, exports, settings, sources, teaching, traces, uploads, views
from model import cards


# ----------------------------------------------------------------------------- fixtures

def png_bytes(size=(40, 32), color=(200, 30, 60), fmt="PNG", mode="RGB") -> bytes:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    arr[..., 0] = color[0]
    img = Image.fromarray(arr, "RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture()
def model(tiny_vit):
    tiny_vit.preprocessor = Preprocessor(resize_to=(24, 24))
    tiny_vit.cfg.class_names = ["ant", "bee", "cat", "dog"]
    return tiny_vit


@pytest.fixture()
def td(model):
    return traces.run_trace(model, png_bytes(), "test.png")


# ----------------------------------------------------------------------------- inputs

def test_public_mode_reads_the_environment():
    assert sources.is_public({"PATCHLIGHT_PUBLIC": "1"})
    assert sources.is_public({"PATCHLIGHT_PUBLIC": "true"})
    assert not sources.is_public({"PATCHLIGHT_PUBLIC": "0"})
    assert not sources.is_public({})
    assert sources.PATH_CHOICE not in sources.model_choices(public=True)
    assert sources.PATH_CHOICE in sources.model_choices(public=False)


@pytest.mark.parametrize("data, name, words", [
    (b"", "a.png", "empty"),
    (b"x" * (2 * 1024 * 1024 + 1), "big.png", "over the 2 MB"),
    (b"abc", "notes.txt", ".txt files are not supported"),
])
def test_check_upload_refuses_with_a_reason(data, name, words):
    with pytest.raises(ImageError, match=words):
        uploads.check_upload(data, name, limit_mb=2)


def test_resolve_source():
    assert sources.resolve_source("dinov2-small") == "dinov2-small"
    assert sources.resolve_source("hf", hf_repo=" google/vit-base-patch16-224 ") == "hf:google/vit-base-patch16-224"
    assert sources.resolve_source("hf", hf_repo="hf:owner/name") == "hf:owner/name"
    with pytest.raises(ValueError, match="type a Hugging Face repo id"):
        sources.resolve_source("hf", hf_repo="")
    with pytest.raises(ValueError, match="not a Hugging Face repo id"):
        sources.resolve_source("hf", hf_repo="just-a-name")
    with pytest.raises(ValueError, match="turned off in the hosted demo"):
        sources.resolve_source("path", local_path="/tmp/x", public=True)


def test_public_demo_loads_only_allowed_hub_repos(monkeypatch):
    monkeypatch.delenv(sources.HUB_ALLOW_ENV, raising=False)
    assert sources.resolve_source("hf", hf_repo="facebook/dinov2-small", public=True) == "hf:facebook/dinov2-small"
    # every spelling of an allowed repo is the allow-list's one: one download, one cache entry (issue 13)
    for typed in ("Facebook/DINOv2-small", "FACEBOOK/dinov2-SMALL", " hf:facebook/Dinov2-Small "):
        source = sources.resolve_source("hf", hf_repo=typed, public=True)
        assert source == "hf:facebook/dinov2-small" and sources.source_key(source) == "hf:facebook/dinov2-small"
    with pytest.raises(ValueError, match="not one of the hub models this hosted demo loads .*google/vit-base"):
        sources.resolve_source("hf", hf_repo="someone/huge-model", public=True)
    assert sources.resolve_source("hf", hf_repo="someone/huge-model") == "hf:someone/huge-model"  # local: any repo
    monkeypatch.setenv(sources.HUB_ALLOW_ENV, "me/a, me/b")
    assert sources.hub_allow_list() == ("me/a", "me/b")
    with pytest.raises(ValueError, match=r"\(me/a, me/b\)"):
        sources.resolve_source("hf", hf_repo="facebook/dinov2-small", public=True)
    monkeypatch.setenv(sources.HUB_ALLOW_ENV, "*")
    assert sources.resolve_source("hf", hf_repo="someone/huge-model", public=True) == "hf:someone/huge-model"
    monkeypatch.setenv(sources.HUB_ALLOW_ENV, "")
    with pytest.raises(ValueError, match=r"\(none\)"):
        sources.resolve_source("hf", hf_repo="facebook/dinov2-small", public=True)
    with pytest.raises(ValueError, match="type the path"):
        sources.resolve_source("path", local_path="  ")


def test_source_key_changes_when_a_checkpoint_is_rewritten(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"1")
    first = sources.source_key(str(f))
    time.sleep(0.01)
    f.write_bytes(b"22")
    import os
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert sources.source_key(str(f)) != first
    assert sources.source_key("fashion-vit") == "fashion-vit"


def test_unreachable_hub_fails_fast_with_a_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.time()
    with pytest.raises(ValueError, match="cannot reach huggingface.co"):
        sources.load("hf:nobody/not-a-model-xyz", reachable=lambda: False)
    assert time.time() - start < 2.0


def test_the_hub_probe_answers_within_its_time_limit():
    start = time.time()
    assert sources.hub_reachable(timeout=0.5) in (True, False)
    assert time.time() - start < 1.5


def test_offline_flag_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        sources.hub_precheck("nobody/not-a-model-xyz", reachable=lambda: True)


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"this is not a safetensors file")
    with pytest.raises(ValueError, match="could not be loaded|not|unsupported"):
        sources.load(str(bad))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(ValueError):
        sources.load(str(folder))
    with pytest.raises(ValueError, match="neither a built-in"):
        sources.load(str(tmp_path / "missing"))


# ----------------------------------------------------------------------------- trace data

def test_the_app_holds_the_trace_as_read_only_numpy(model):
    """One trace type: the app's cached trace is ``Trace.numpy()`` — the same arrays as the
    model's trace, batch axis kept, and read-only because sessions share it."""
    img = Image.open(io.BytesIO(png_bytes())).convert("RGB")
    ref = model.trace([img]).arrays()
    td = traces.run_trace(model, png_bytes(), "x.png")
    mine = td.arrays()
    assert set(mine) == set(ref)
    for key in ref:
        np.testing.assert_allclose(mine[key], ref[key], rtol=0, atol=1e-6, err_msg=key)
    back = np.load(io.BytesIO(traces.trace_npz(td)))
    assert set(back.files) == set(ref)
    with pytest.raises(ValueError):
        td.attentions[0, 0, 0, 0, 0] = 1.0
    assert td.T == td.num_prefix_tokens + td.N == 1 + 2 + 16
    assert td.token_name(0) == "CLS" and td.token_name(1) == "REG0"
    assert td.token_name(3 + 5) == "patch 5 (row 1, col 1)"  # patches are numbered by patch index


def test_decoding_errors_are_image_errors(model):
    with pytest.raises(ImageError, match="not an image"):
        traces.run_trace(model, b"definitely not an image", "x.png")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        traces.run_trace(model, b"\x89PNG\r\n\x1a\n garbage after the signature", "x.png")
    jpeg = png_bytes(size=(64, 64), fmt="JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        traces.run_trace(model, jpeg[: len(jpeg) // 2], "cut.jpg")
    buf = io.BytesIO()
    Image.new("1", (6000, 5000)).save(buf, format="PNG")  # 30 MP, a few kB
    with pytest.raises(ImageError, match="MP limit"):
        traces.run_trace(model, buf.getvalue(), "huge.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_upload_format_traces(model, fmt):
    td = traces.run_trace(model, png_bytes(fmt=fmt), f"x.{fmt.lower()}")
    assert td.image(0).shape == (24, 24, 3)


def test_qkv_step_reproduces_the_traced_attention(td):
    for layer, head, query in [(0, 0, 0), (2, 1, 7), (1, 2, 18)]:
        q = views.qkv_step(td, layer, head, query, top=5)
        np.testing.assert_allclose(q["weights"], td.attentions[0][layer, head, query], atol=1e-5)
        assert q["max_diff"] < 1e-5
        assert abs(q["weight_sum"] - 1) < 1e-9
        assert len(q["top"]) == 5
        assert q["top"][0]["softmax weight"] >= q["top"][-1]["softmax weight"]
        np.testing.assert_allclose(q["out"], q["weights"] @ td.values[0][layer, head].astype(np.float64))


def test_projection_position_and_residual_checks_hold(model, td):
    w, b = traces.patch_projection(model)
    assert w.shape == (td.D, td.patches[0].shape[1])
    assert views.projection_check(td, w, b, views.centre_patch(td))["max_diff"] < 1e-4
    assert views.position_sum(td, td.num_prefix_tokens + 3)["max_diff"] < 1e-5
    rows = views.residual_table(td, 0)
    assert len(rows) == td.L and max(r["check"] for r in rows) < 1e-4


def test_attention_views_have_the_right_shapes(td):
    h, w = td.grid
    assert views.attention_map(td, 1, 2, 0).shape == (h, w)
    assert views.attention_map(td, 1, "mean", 0).shape == (h, w)
    assert views.heads_maps(td, 1, 5).shape == (td.H, h, w)
    assert views.layers_maps(td, 0, 5).shape == (td.L, h, w)
    assert views.grid_maps(td, 5).shape == (td.L, td.H, h, w)
    share = views.prefix_share(td, 1, 2, 0)
    np.testing.assert_allclose(share + views.attention_map(td, 1, 2, 0).sum(), 1.0, atol=1e-5)


def test_explanation_maps(model, td):
    only = views.explanation_maps(td, None, query=4)
    assert list(only) == ["rollout"]
    ref = patch_map(attention_rollout(td.attentions[0], num_prefix_tokens=td.num_prefix_tokens)[4], td.grid,
                    td.num_prefix_tokens)
    np.testing.assert_allclose(only["rollout"], ref)
    grads = traces.run_gradients(model, png_bytes(), "test.png", 2)
    assert grads.shape == td.attentions[0].shape and np.abs(grads).sum() > 0
    maps = views.explanation_maps(td, grads, fusion="max", discard_ratio=0.5, residual_alpha=0.7, start_layer=1)
    assert list(maps) == ["rollout", "gradient rollout", "Chefer et al."]
    assert all(m.shape == td.grid for m in maps.values())


def test_head_statistics(td):
    st = views.head_statistics(td)
    for key in ("distance", "entropy", "prefix"):
        assert st[key].shape == (td.L, td.H)
    assert st["norms"].shape == (td.L + 1, td.T)
    assert isinstance(st["artifacts"], list)


def test_clicks_become_tokens_and_heads():
    assert clicks.token_from_points([{"customdata": 17, "x": 3}], T=20) == 17
    assert clicks.token_from_points([{"customdata": [5, 0, 1]}], T=20) == 5
    assert clicks.token_from_points([{"customdata": {"0": 7, "1": 2}}], T=20) == 7  # a row of a 2-D array
    assert clicks.token_from_points([{"customdata": 99}], T=20) is None
    assert clicks.token_from_points([{"x": 1, "y": 2}], T=20) is None
    assert clicks.token_from_points([], T=20) is None
    assert clicks.head_from_points([{"customdata": [3, 1, 0.5]}], L=4, H=2) == (3, 1)
    assert clicks.head_from_points([{"x": 2, "customdata": 1}], L=4, H=2) == (2, 1)
    assert clicks.head_from_points([{"customdata": [9, 9]}], L=4, H=2) is None
    # what Streamlit really sends for a row of a 2-D customdata array (seen in Chromium)
    clicked = {"curve_number": 1, "point_index": 11, "x": 3, "y": 2, "customdata": {"0": 2, "1": 3, "2": 3.40}}
    assert clicks.head_from_points([clicked], L=4, H=4) == (2, 3)


def test_patch_centres_are_the_click_targets(td):
    xs, ys, tokens = clicks.patch_centres(td)
    P = td.patch_size
    assert len(xs) == td.N and tokens[0] == td.num_prefix_tokens and tokens[-1] == td.T - 1
    assert xs[1] - xs[0] == P and ys[td.grid[1]] - ys[0] == P


def test_loss_is_minus_log_p(td):
    z = td.logits[0].astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    for label in range(td.K):
        loss = views.loss_for(td, label)
        assert loss["loss"] == pytest.approx(-np.log(p[label]))
    assert views.loss_for(td, 0)["uniform"] == pytest.approx(np.log(td.K))
    with pytest.raises(ValueError, match="out of range"):
        views.loss_for(td, td.K)
    top = views.top_classes(td, 3)
    assert [r["class"] for r in top][0] == td.class_names()[int(np.argmax(z))]


def test_no_head_explains_itself(model):
    model.head = None
    model.cfg.num_classes = 0
    model.cfg.head_type = "none"
    td = traces.run_trace(model, png_bytes(), "x.png")
    assert not td.has_head and td.class_names() == []
    with pytest.raises(ValueError, match="no classification head"):
        views.loss_for(td, 0)
    assert "without a classification head" in cards.unavailable_reason(model, "loss")
    assert cards.label_smoothing_target(model) is None and cards.training_curve_of(model) is None  # not a built-in


def test_color_top_saturates_a_single_outlier():
    maps = np.full((4, 4, 5, 5), 0.01)
    maps[0, 0, 0, 0] = 0.9
    assert views.color_top(maps) < 0.05
    assert views.color_top(np.zeros((2, 2))) == 1.0


def test_maps_files_round_trip():
    maps = {"rollout": np.arange(6.0).reshape(2, 3), "Chefer et al.": np.ones((2, 3))}
    back = np.load(io.BytesIO(exports.maps_npz(maps)))
    np.testing.assert_array_equal(back["rollout"], maps["rollout"])
    assert "chefer_et_al" in back.files
    lines = exports.maps_csv(maps).splitlines()
    assert lines[0] == "map,row,col,value" and len(lines) == 1 + 12
    assert lines[1] == "rollout,0,0,0.0"


def test_model_facts_and_card(model):
    facts = cards.model_facts(model)
    assert facts["depth"] == 3 and facts["num_heads"] == 3 and facts["prefix_names"] == ["CLS", "REG0", "REG1"]
    assert facts["device"] == "cpu" and facts["has_head"]
    assert "3 layers × 3 heads" in cards.model_card_text(model)


# ----------------------------------------------------------------------------- settings

def test_settings_json_round_trip():
    s = dict(settings.DEFAULTS, model_choice="hf", hf_repo="owner/name", layer=3, head=2, query=7, view="matrix",
             colormap="viridis", opacity=0.3, discard_ratio=0.9, classroom=True)
    text = settings.settings_to_json(s, {"sample": "chelsea"})
    data = json.loads(text)
    assert data["model"] == "hf:owner/name" and data["layer"] == 3 and data["image"] == {"sample": "chelsea"}
    back, warnings = settings.settings_from_json(text)
    assert warnings == []
    for key in ("model_choice", "hf_repo", "layer", "head", "query", "view", "colormap", "opacity",
                "discard_ratio", "classroom"):
        assert back[key] == s[key], key


def test_bad_settings_are_skipped_with_a_warning_each():
    parsed, warnings = settings.parse_settings({"layer": "two", "colormap": "rainbow", "opacity": 3, "zoom": 1,
                                           "head": "4", "classroom": "yes", "sample": "no-such"})
    assert parsed == {"head": 4, "classroom": True}
    assert len(warnings) == 5
    assert any("layer" in w for w in warnings) and any("zoom" in w for w in warnings)
    _, warnings = settings.parse_settings({"model": "/some/dir"}, public=True)
    assert "hosted demo" in warnings[0]
    with pytest.raises(ValueError, match="not valid JSON"):
        settings.settings_from_json("{oops")
    with pytest.raises(ValueError, match="not a Patchlight settings file"):
        settings.settings_from_json('{"layer": 2}')
    with pytest.raises(ValueError, match="holds no setting"):
        settings.settings_from_json('{"patchlight_settings": 1, "zoom": 3}')
    with pytest.raises(ValueError, match="JSON object"):
        settings.parse_settings([1, 2])


def test_query_parameters_carry_the_changed_settings():
    s = dict(settings.DEFAULTS, model_choice="dinov2-small", sample="chelsea", layer=4, view="matrix")
    q = settings.settings_query(s)
    assert q == {"model": "dinov2-small", "sample": "chelsea", "layer": "4", "view": "matrix"}
    back, warnings = settings.parse_settings({k: [v] for k, v in q.items()})
    assert not warnings and back["layer"] == 4 and back["model_choice"] == "dinov2-small"


def test_clamp_settings_to_a_smaller_model():
    s = dict(settings.DEFAULTS, layer=11, head=5, query=256, start_layer=11, target_class=7, loss_label=3)
    changes = settings.clamp_settings(s, L=4, H=4, T=50, K=0)
    assert changes == {"layer": 3, "head": 3, "query": 49, "start_layer": 3, "target_class": -1, "loss_label": -1}
    assert settings.clamp_settings(settings.DEFAULTS, L=4, H=4, T=50, K=10) == {}


def test_gradient_call_leaves_grad_mode_as_it_was(model):
    before = torch.is_grad_enabled()
    traces.run_gradients(model, png_bytes(), "x.png", 1)
    assert torch.is_grad_enabled() == before
    td = traces.run_trace(model, png_bytes(), "x.png")
    assert td.attentions[0].dtype == np.float32


def test_streamlit_config_matches_the_code():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == uploads.MAX_UPLOAD_MB
    assert config["client"]["showErrorDetails"] == "none"  # no tracebacks in the browser


def test_mlp_hidden_units_reproduce_the_traced_update(model, td):
    for layer, token in [(0, 0), (2, 7)]:
        hidden = views.mlp_hidden(model, td, layer, token)
        assert hidden.shape == (model.cfg.mlp_dim,)
        with torch.no_grad():
            block = model.blocks[layer]
            update = block.ls2(block.mlp.fc2(torch.as_tensor(hidden))).numpy()
        np.testing.assert_allclose(update, td.mlp_residuals[0][layer, token], atol=1e-5)


def test_patch_helpers(td):
    P = td.patch_size
    assert views.patch_pixels(td, 0).shape == (P, P, 3)
    np.testing.assert_array_equal(views.patch_pixels(td, td.grid[1] + 1), td.image(0)[P:2 * P, P:2 * P])
    names = views.token_names(td)
    assert len(set(names)) == td.T
    short = views.short_token_names(td)
    assert len(set(short)) == td.T and short[0] == "CLS" and short[3] == "3 (r0,c0)"
    norms = views.residual_norms(td, 3)
    assert norms["attn"].shape == (td.L,) and norms["stream"].shape == (td.L + 1,)


def test_mass_mask_keeps_the_share(td):
    m, mask = views.mass_mask(td, 1, 0, 0, 0.6)
    assert mask.shape == td.grid and mask.dtype == bool
    assert m[mask].sum() >= 0.6 * m.sum() - 1e-9


def test_distance_summary_says_what_the_numbers_show():
    """The Heads page's caption follows the model's numbers, not a fixed claim (issue 10, item 10)."""
    rising = np.array([[10.0, 30.0], [40.0, 50.0], [70.0, 90.0]])
    text = views.distance_summary(rising)
    assert "later layers look further" in text and "10–30 px" in text and "70–90 px" in text
    falling = rising[::-1]
    assert "closer" in views.distance_summary(falling) and "further" not in views.distance_summary(falling)
    flat = np.array([[20.0, 40.0], [45.0, 15.0], [30.0, 31.0], [29.0, 33.0]])
    assert "no steady trend" in views.distance_summary(flat)
    (lo_l, lo_h, lo), (hi_l, hi_h, hi) = views.extreme_heads(rising)
    assert (lo_l, lo_h, lo) == (0, 0, 10.0) and (hi_l, hi_h, hi) == (2, 1, 90.0)


def test_pca_of_a_letterboxed_photo_is_fitted_on_the_photo(model):
    """The padding bands of a non-square photo do not take the first component (issue 10, item 14)."""
    from model import patch_embedding_pca

    td = traces.run_trace(model, png_bytes(), "x.png")
    keep = views.content_patches(td, pad_value=None)
    assert keep.all() and keep.shape == (td.N,)
    # the first grid row as padding: it is left out of the fit and shown grey
    mask = np.ones(td.N, dtype=bool)
    mask[: td.grid[1]] = False
    rgb, ratio = patch_embedding_pca(td.patch_embeddings[0], td.grid, fit_mask=mask)
    assert np.allclose(rgb[0], 0.5) and ratio.sum() <= 1 + 1e-9
    rest, _ = patch_embedding_pca(td.patch_embeddings[0][td.grid[1]:], (td.grid[0] - 1, td.grid[1]))
    np.testing.assert_allclose(rgb[1:], rest, atol=1e-9)  # the same fit as on the photo alone


def test_every_figure_builds_for_a_fresh_checkpoint_with_zero_registers(model):
    """Registers start at zero in a fresh checkpoint, so their norm is 0 after the embeddings:
    the log-scale norm figures and the artifact statistics must still build (issue 10, item 5)."""
    import torch

    from app_core import figures

    with torch.no_grad():
        model.reg_token.zero_()
    td = traces.run_trace(model, png_bytes(), "x.png")
    assert (np.linalg.norm(td.hidden_states[0][0, 1:3], axis=-1) == 0).all()  # REG0, REG1 at zero
    stats = views.head_statistics(td)
    inputs = figures.FigureInputs(
        trace=td, model_name="fresh", statistics=lambda: stats,
        explanations=lambda v: views.explanation_maps(td, None, query=v.query),
        mlp_hidden=lambda layer, token: views.mlp_hidden(model, td, layer, token))
    view = figures.View(class_index=None)
    for spec in figures.available(inputs):
        fig = figures.build(spec.name, inputs, view)
        assert fig.data, spec.name
    norms = figures.build("token_norms", inputs, view)
    z = np.asarray(norms.data[0].z, dtype=float)
    assert np.isnan(z[0, 1:3]).all() and np.isfinite(z[1:]).all()  # zero norms left blank, not a failure


def test_a_trace_still_in_use_is_handed_out_again_not_recomputed(model, monkeypatch):
    """live_trace's cache lets a trace go (LRU, TTL) while a session still holds it: the same
    object comes back instead of a second copy (issue 15: 58 traces alive behind a cache of 12)."""
    import gc

    from app_pages import shared

    data = png_bytes()
    runs = []
    real = traces.run_trace
    monkeypatch.setattr(traces, "run_trace", lambda *a: runs.append(1) or real(*a))
    shared.live_trace.clear()
    held = shared.live_trace("tiny", "digest-a", "a.png", model, data)
    shared.live_trace.clear()  # evicted, but a session still holds it
    again = shared.live_trace("tiny", "digest-a", "a.png", model, data)
    assert again is held and len(runs) == 1
    other = shared.live_trace("tiny", "digest-b", "a.png", model, data)  # another key: computed
    assert other is not held and len(runs) == 2
    del held, again, other
    shared.live_trace.clear()
    gc.collect()
    fresh = shared.live_trace("tiny", "digest-a", "a.png", model, data)  # nobody held it: computed anew
    assert len(runs) == 3 and fresh.attentions.shape[0] == 1
    shared.live_trace.clear()


def test_a_frozen_figure_is_one_dict_sent_as_built_with_safe_colours():
    """charts.frozen: what caches keep and st.plotly_chart sends — the figure's JSON written once
    (the same dict and string on every send), Streamlit's colour placeholders (#000001…#000030,
    which its frontend would recolour) written as rgb(), everything else as plotly's to_dict."""
    import json

    import plotly.io as pio

    import viz
    from app_pages import charts

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    fig = viz.attention_overlay_figure(img, rng.random((4, 4)), style=viz.MapStyle(colormap="inferno"))
    expected = json.loads(pio.to_json(fig.to_dict(), validate=False))
    shell = charts.frozen(fig)
    spec = shell.to_dict()
    assert shell.to_dict() is spec and charts.frozen(shell) is shell
    assert set(spec) == {"layout"} and spec["layout"] == fig.to_dict()["layout"]  # what st.plotly_chart reads
    sent = json.loads(pio.to_json(spec, validate=False))
    scale = sent["data"][1]["colorscale"]
    assert scale[0][1] == "rgb(0,0,4)" and expected["data"][1]["colorscale"][0][1].lower() == "#000004"
    sent["data"][1]["colorscale"][0][1] = expected["data"][1]["colorscale"][0][1]
    assert sent == expected
    assert len(charts.full(shell).data) == len(fig.data)  # the downloads get the figure back
    assert viz.figure_to_csv(charts.full(shell)) == viz.figure_to_csv(fig)  # the CSV button's numbers


def test_a_taught_heads_trace_shares_the_backbones_and_adds_its_logits(model):
    """app_core.traces.with_head: equal to the head model's own trace, every array but the
    logits the backbone trace's own memory (a dinov2-small trace is ~48 MB per copy)."""
    from model.heads import Head, attach_head

    rng = np.random.default_rng(3)
    head = Head("cls", rng.normal(size=(3, 24)).astype(np.float32), rng.normal(size=3).astype(np.float32),
                ["x", "y", "z"], "tiny", 24)
    taught = attach_head(model, head)
    data = png_bytes()
    base = traces.run_trace(model, data, "a.png")
    full = traces.run_trace(taught, data, "a.png")
    derived = traces.with_head(base, taught)
    assert derived.labels == ["x", "y", "z"] and derived.K == 3 and base.K == 4
    np.testing.assert_allclose(derived.logits, full.logits, rtol=0, atol=1e-6)
    assert not np.allclose(derived.logits[..., :3], base.logits[..., :3])  # the head's, not the backbone's
    for name in ("attentions", "queries", "keys", "values", "hidden_states", "last_hidden_state", "pixel_values"):
        np.testing.assert_array_equal(getattr(derived, name), getattr(full, name))
        assert np.shares_memory(getattr(derived, name), getattr(base, name)), name
    assert not derived.logits.flags.writeable and derived.logits.dtype == np.float32
    assert teaching.backbone_key(teaching.model_key_with_head("dinov2-small", "abc")) == "dinov2-small"
    assert teaching.backbone_key("dinov2-small") == "dinov2-small"
