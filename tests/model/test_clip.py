"""CLIP: our ViT equals transformers' CLIP image tower (every layer's attention, the hidden
states, the image embedding within 1e-4), and text prompts as classes give CLIPModel's own
logits_per_image; the text side runs through transformers itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model import load_model
from model.clip import DEFAULT_TEMPLATE, is_clip, parse_prompts, prompt_head, with_prompts
from model.heads import head_from_model, load_head, save_head

TOL = 1e-4
PROMPTS = ["cat", "dog", "red car", "a tree"]


def reference_logits(directory, ref, pixels, prompts, template=DEFAULT_TEMPLATE):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    batch = tokenizer([template.format(p) for p in prompts], padding=True, return_tensors="pt")
    with torch.no_grad():
        return ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=pixels)


def test_image_tower_matches_transformers_layer_by_layer(clip_model):
    directory, ref = clip_model
    model = load_model(str(directory), device="cpu")
    assert is_clip(model) and model.cfg.pre_norm and model.cfg.act == "quick_gelu" and not model.cfg.has_head
    from model.cards import model_card_text, unavailable_reason

    assert "classes are text prompts" in model_card_text(model) and "Classes box" in unavailable_reason(model, "logits")
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    trace = model.trace(pixels)
    with torch.no_grad():
        out = ref.vision_model(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
        image_embeds = ref.get_image_features(pixel_values=pixels)
    image_embeds = getattr(image_embeds, "pooler_output", image_embeds)  # transformers 5 returns an output object
    L = len(out.attentions)
    assert trace.attentions.shape[1] == L == 3
    for l in range(L):
        torch.testing.assert_close(trace.attentions[:, l], out.attentions[l], atol=TOL, rtol=0)
    # hidden_states[0] is after CLIP's pre-LayerNorm, as transformers reports it
    assert len(out.hidden_states) == L + 1
    for l, h in enumerate(out.hidden_states):
        torch.testing.assert_close(trace.hidden_states[:, l], h, atol=TOL, rtol=0)
    # the final norm of the CLS is CLIP's post_layernorm of the pooled token
    torch.testing.assert_close(trace.last_hidden_state[:, 0], out.pooler_output, atol=TOL, rtol=0)
    P = torch.as_tensor(model.clip.projection)
    torch.testing.assert_close(trace.last_hidden_state[:, 0] @ P.T, image_embeds, atol=TOL, rtol=0)


def test_other_input_size_matches_transformers_interpolation(clip_model):
    directory, ref = clip_model
    model = load_model(str(directory), device="cpu")
    pixels = torch.randn(1, 3, 40, 48, generator=torch.Generator().manual_seed(2))
    trace = model.trace(pixels)
    with torch.no_grad():
        out = ref.vision_model(pixel_values=pixels, output_attentions=True, interpolate_pos_encoding=True)
    assert trace.grid == (5, 6)
    for l, a in enumerate(out.attentions):
        torch.testing.assert_close(trace.attentions[:, l], a, atol=TOL, rtol=0)


def test_prompts_as_classes_give_clipmodels_logits_per_image(clip_model):
    directory, ref = clip_model
    model = with_prompts(load_model(str(directory), device="cpu"), PROMPTS)
    assert model.cfg.class_names == PROMPTS and model.cfg.head_type == "clip"
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    expected = reference_logits(directory, ref, pixels, PROMPTS).logits_per_image  # (B, K)
    with torch.no_grad():
        fast, _ = model(pixels)
    torch.testing.assert_close(fast, expected, atol=TOL, rtol=0)
    torch.testing.assert_close(model.trace(pixels).logits, expected, atol=TOL, rtol=0)
    # another template changes the sentences the text tower reads, and the logits with them
    other = with_prompts(load_model(str(directory), device="cpu"), PROMPTS, template="{}")
    expected = reference_logits(directory, ref, pixels, PROMPTS, template="{}").logits_per_image
    with torch.no_grad():
        torch.testing.assert_close(other(pixels)[0], expected, atol=TOL, rtol=0)


def test_head_rows_are_the_scaled_normalised_text_features(clip_model):
    directory, ref = clip_model
    from transformers import AutoTokenizer

    head = prompt_head(str(directory), "cat, dog,  dog , red   car")  # from the directory, as text
    assert head.class_names == ["cat", "dog", "red car"] and head.recipe["template"] == DEFAULT_TEMPLATE
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    batch = tokenizer([DEFAULT_TEMPLATE.format(n) for n in head.class_names], padding=True, return_tensors="pt")
    with torch.no_grad():
        t = ref.get_text_features(**batch)
    t = getattr(t, "pooler_output", t).double().numpy()
    expected = ref.logit_scale.exp().item() * t / np.linalg.norm(t, axis=1, keepdims=True)
    np.testing.assert_allclose(head.weight, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(head.projection, ref.visual_projection.weight.detach().numpy())


def test_class_maps_for_a_typed_label_are_the_gradient_of_its_logit(clip_model):
    """∂y_k/∂A_l of our trace equals autograd through transformers' CLIPModel, layer by layer."""
    directory, ref = clip_model
    model = with_prompts(load_model(str(directory), device="cpu"), PROMPTS)
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    k = PROMPTS.index("red car")
    trace = model.trace(pixels, grad_class=k)
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(str(directory))([DEFAULT_TEMPLATE.format(p) for p in PROMPTS],
                                                          padding=True, return_tensors="pt")
    out = ref(**batch, pixel_values=pixels, output_attentions=True)
    attentions = out.vision_model_output.attentions
    grads = torch.autograd.grad(out.logits_per_image[0, k], attentions)
    for l, g in enumerate(grads):
        torch.testing.assert_close(trace.attention_grads[:, l], g, atol=1e-5, rtol=1e-3)
    assert int(trace.grad_classes[0]) == k


def test_prompt_head_saves_and_loads_like_any_head(clip_model, tmp_path):
    directory, _ = clip_model
    model = load_model(str(directory), device="cpu")
    prompted = with_prompts(model, PROMPTS)
    head = head_from_model(prompted)
    back = load_head(save_head(head, tmp_path / "prompts.safetensors"))
    x = torch.randn(1, 3, 32, 32)
    from model.heads import attach_head

    with torch.no_grad():
        np.testing.assert_array_equal(attach_head(model, back)(x)[0], prompted(x)[0])
    assert not model.cfg.has_head  # the backbone is left as it was


def test_old_checkpoint_files_load(clip_model, tmp_path):
    """As on the hub since 2021: position_ids buffers in the weights, the sub-config under
    vision_config_dict, an int `size` that CLIP's processor reads as the shortest edge."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    directory, ref = clip_model
    for f in directory.iterdir():
        shutil.copy(f, tmp_path / f.name)
    state = load_file(str(directory / "model.safetensors"))
    for tower, n in (("vision_model", 17), ("text_model", 40)):
        state[f"{tower}.embeddings.position_ids"] = torch.arange(n)[None]
    save_file(state, str(tmp_path / "model.safetensors"))
    raw = json.loads((directory / "config.json").read_text())
    raw["vision_config_dict"] = raw.pop("vision_config")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": 32, "do_center_crop": True, "do_normalize": True, "do_resize": True, "size": 32,
        "feature_extractor_type": "CLIPFeatureExtractor", "resample": 3,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    model = with_prompts(load_model(str(tmp_path), device="cpu"), PROMPTS)
    assert model.preprocessor.shortest_edge == 32 and model.preprocessor.crop_size == (32, 32)
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.testing.assert_close(model(pixels)[0], reference_logits(directory, ref, pixels, PROMPTS).logits_per_image,
                                   atol=TOL, rtol=0)


def test_a_directory_without_tokenizer_files_says_so(clip_model, tmp_path):
    """transformers would build a three-token tokenizer without them and give every prompt the same row."""
    import shutil

    directory, _ = clip_model
    for name in ("config.json", "model.safetensors"):
        shutil.copy(directory / name, tmp_path / name)
    with pytest.raises(ValueError, match="tokenizer files"):
        prompt_head(str(tmp_path), PROMPTS)


@pytest.mark.parametrize("kind", ["vision", "vision-proj"])
def test_image_tower_only_checkpoints_load_and_say_why_prompts_need_the_text_tower(tmp_path, kind, clip_builder):
    ref = clip_builder(tmp_path, kind=kind, seed=5)
    model = load_model(str(tmp_path), device="cpu")
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    trace = model.trace(pixels)
    with torch.no_grad():
        out = ref(pixel_values=pixels, output_attentions=True)
    for l, a in enumerate(out.attentions):
        torch.testing.assert_close(trace.attentions[:, l], a, atol=TOL, rtol=0)
    if kind == "vision-proj":
        P = torch.as_tensor(model.clip.projection)
        torch.testing.assert_close(trace.last_hidden_state[:, 0] @ P.T, out.image_embeds, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="only CLIP's image tower"):
        prompt_head(model, PROMPTS)


def test_prompts_and_templates_get_one_clear_message(clip_model, tiny_vit):
    assert parse_prompts("cat,\n dog , cat,,") == ["cat", "dog"]
    assert parse_prompts(["a  b", "c"]) == ["a b", "c"]
    with pytest.raises(ValueError, match="at least two class prompts"):
        parse_prompts("cat, , cat")
    with pytest.raises(ValueError, match="at most 3"):
        parse_prompts("a, b, c, d", max_count=3)
    with pytest.raises(ValueError, match="keep each under 6"):
        parse_prompts("short, much too long", max_length=5)
    directory, _ = clip_model
    for bad in ("a photo", "{} and {}", "a {x} {}", "a } {}"):
        with pytest.raises(ValueError, match="exactly once"):
            prompt_head(str(directory), PROMPTS, template=bad)
    with pytest.raises(ValueError, match="not a CLIP model"):
        prompt_head(tiny_vit, PROMPTS)


@pytest.mark.slow
def test_clip_vit_base_patch32_sized_image_tower_matches_transformers(tmp_path, clip_builder):
    """The size of openai/clip-vit-base-patch32's image tower (D 768, 12 layers, 224 px, patch 32)."""
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=224, patch_size=32)
    # a smaller perturbation than the tiny models': at width 768 the tiny models' one makes the
    # attention logits so large that float32 rounding alone moves single weights by 1e-4
    ref = clip_builder(tmp_path, kind="vision-proj", vision=vision, perturb=0.06)
    model = load_model(str(tmp_path), device="cpu")
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    trace = model.trace(pixels)
    with torch.no_grad():
        out = ref(pixel_values=pixels, output_attentions=True)
    for l, a in enumerate(out.attentions):
        torch.testing.assert_close(trace.attentions[:, l], a, atol=TOL, rtol=0)
    print("largest attention weight per layer:", [round(float(a.max()), 3) for a in out.attentions])
    assert float(out.attentions[-1].max()) > 5 / trace.attentions.shape[-1]  # far from uniform
    P = torch.as_tensor(model.clip.projection)
    torch.testing.assert_close(trace.last_hidden_state[:, 0] @ P.T, out.image_embeds, atol=TOL, rtol=0)


def test_clip_image_classifier_is_refused_with_what_to_load(tmp_path):
    import transformers

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=16,
                  patch_size=8)
    cfg = transformers.CLIPConfig(vision_config=vision, text_config=dict(hidden_size=32, intermediate_size=64,
                                                                         num_hidden_layers=1, num_attention_heads=2),
                                  num_labels=3)
    transformers.CLIPForImageClassification(cfg).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="CLIPForImageClassification .* is not supported"):
        load_model(str(tmp_path), device="cpu")


def test_a_gelu_clip_matches_transformers(tmp_path, clip_builder):
    """LAION's CLIP models use exact GELU, OpenAI's quick_gelu: the config's hidden_act decides."""
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=24,
                  patch_size=6, hidden_act="gelu")
    ref = clip_builder(tmp_path, kind="vision-proj", vision=vision, seed=9)
    model = load_model(str(tmp_path), device="cpu")
    assert model.cfg.act == "gelu"
    pixels = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        out = ref(pixel_values=pixels, output_attentions=True)
    trace = model.trace(pixels)
    for l, a in enumerate(out.attentions):
        torch.testing.assert_close(trace.attentions[:, l], a, atol=TOL, rtol=0)
    P = torch.as_tensor(model.clip.projection)
    torch.testing.assert_close(trace.last_hidden_state[:, 0] @ P.T, out.image_embeds, atol=TOL, rtol=0)
