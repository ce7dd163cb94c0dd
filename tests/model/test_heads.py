"""model/heads.py: a head apart from its backbone, attached without copying the backbone."""
import numpy as np
import pytest
import torch

from model.config import ViTConfig
from model.heads import Head, attach_head, head_from_model, load_head, save_head
from model.vit import ViT


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=(32, 32), patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_dim=64,
                    num_classes=0, head_type="none", name="tiny")
    return ViT(cfg).eval()


def random_head(head_type="cls_patch_mean", K=3, D=32, E=16, seed=1):
    rng = np.random.default_rng(seed)
    F = {"cls": D, "cls_patch_mean": 2 * D, "clip": E}[head_type]
    projection = rng.normal(size=(E, D)) if head_type == "clip" else None
    bias = None if head_type == "clip" else rng.normal(size=K)
    return Head(head_type, rng.normal(size=(K, F)), bias, [f"c{k}" for k in range(K)], "tiny", D, projection,
                {"name": "test head"})


def test_attached_head_gives_the_logits_of_its_definition(backbone):
    head = random_head("cls_patch_mean")
    model = attach_head(backbone, head)
    x = torch.randn(2, 3, 32, 32)
    z = backbone.forward_features(x).detach().double()  # LN(zL), (B, T, D)
    features = torch.cat([z[:, 0], z[:, 1:].mean(dim=1)], dim=-1).numpy()
    expected = features @ head.weight.T.astype(np.float64) + head.bias
    logits, loss = model(x, torch.tensor([0, 2]))
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    assert loss is not None and model.cfg.has_head and model.cfg.class_names == ["c0", "c1", "c2"]


def test_clip_head_is_the_scaled_cosine_with_the_prompt_rows(backbone):
    head = random_head("clip")
    model = attach_head(backbone, head)
    x = torch.randn(1, 3, 32, 32)
    cls = backbone.forward_features(x)[0, 0].detach().double().numpy()
    image = head.projection.astype(np.float64) @ cls
    expected = head.weight.astype(np.float64) @ (image / np.linalg.norm(image))
    logits, _ = model(x)
    np.testing.assert_allclose(logits[0].detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_backbone_is_shared_and_left_unchanged(backbone):
    model = attach_head(backbone, random_head())
    assert backbone.head is None and not backbone.cfg.has_head
    assert model.blocks[0].attn.qkv.weight.data_ptr() == backbone.blocks[0].attn.qkv.weight.data_ptr()
    assert model.head is not None and getattr(backbone, "attached_head", None) is None
    trace = model.trace(torch.randn(1, 3, 32, 32), grad_class="top")
    assert trace.attention_grads is not None and trace.logits.shape == (1, 3)
    assert head_from_model(model) is model.attached_head


def test_save_and_load_round_trip(tmp_path, backbone):
    for head_type in ("cls", "cls_patch_mean", "clip"):
        head = random_head(head_type)
        path = save_head(head, tmp_path / f"{head_type}.safetensors")
        for source in (path, path.read_bytes()):
            back = load_head(source)
            assert (back.head_type, back.class_names, back.recipe) == (head.head_type, head.class_names, head.recipe)
            np.testing.assert_array_equal(back.weight, head.weight)
            x = torch.randn(1, 3, 32, 32)
            np.testing.assert_array_equal(attach_head(backbone, back)(x)[0].detach(),
                                          attach_head(backbone, head)(x)[0].detach())


def test_bad_heads_and_files_get_one_clear_message(tmp_path, backbone):
    with pytest.raises(ValueError, match="at least 2 classes"):
        Head("cls", np.zeros((1, 32)), None, ["a"], "tiny", 32)
    with pytest.raises(ValueError, match="one name per class"):
        Head("cls", np.zeros((2, 32)), None, ["a"], "tiny", 32)
    with pytest.raises(ValueError, match="reads 64"):
        Head("cls_patch_mean", np.zeros((2, 32)), None, ["a", "b"], "tiny", 32)
    wide = Head("cls", np.zeros((2, 48)), None, ["a", "b"], "wide", 48)
    with pytest.raises(ValueError, match="D=48.*D=32"):
        attach_head(backbone, wide)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_head(junk)
    with pytest.raises(ValueError, match="could not be read"):
        load_head(tmp_path / "missing.safetensors")
    from safetensors.numpy import save_file
    save_file({"weight": np.zeros((2, 32), np.float32)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="no Patchlight head metadata"):
        load_head(tmp_path / "bare.safetensors")


def test_head_description_says_which_head_gives_the_logits(backbone):
    from model.heads import head_description, head_digest, head_kind

    assert head_kind(backbone) is None and head_description(backbone) is None
    taught = random_head("cls_patch_mean")
    taught.recipe["name"] = "fruit"
    model = attach_head(backbone, taught)
    assert head_kind(model) == "taught"
    assert head_description(model) == 'taught head "fruit" (3 classes: c0, c1, c2)'
    assert head_kind(attach_head(backbone, random_head("clip"))) == "clip"
    assert head_description(attach_head(backbone, random_head("clip"))).startswith("CLIP text prompts")
    cfg = ViTConfig(image_size=(32, 32), patch_size=8, embed_dim=32, depth=1, num_heads=4, mlp_dim=64,
                    num_classes=2, class_names=["a", "b"])
    assert head_description(ViT(cfg)) == "the model's built-in head (2 classes: a, b)"
    assert head_description(model, quote=lambda t: t.upper()) == 'taught head "FRUIT" (3 classes: C0, C1, C2)'
    assert head_digest(taught) == head_digest(taught) and head_digest(taught) != head_digest(random_head(seed=2))
