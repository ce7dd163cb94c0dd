"""model/cards.py: facts, cards and 'not available' reasons, shared by the CLI and the app."""
from __future__ import annotations

import pytest

from model import Preprocessor
from model.cards import label_smoothing_target, model_card_text, model_facts, training_curve_of, unavailable_reason


@pytest.fixture()
def model(tiny_vit):
    tiny_vit.preprocessor = Preprocessor(resize_to=(24, 24))
    tiny_vit.cfg.class_names = ["ant", "bee", "cat", "dog"]
    return tiny_vit


def test_facts_and_generated_card(model):
    facts = model_facts(model)
    assert facts["depth"] == 3 and facts["num_heads"] == 3 and facts["prefix_names"] == ["CLS", "REG0", "REG1"]
    assert facts["device"] == "cpu" and facts["has_head"] and facts["num_classes"] == 4
    card = model_card_text(model)
    assert "3 layers × 3 heads" in card and "4 classes (ant, bee, cat, dog)" in card
    assert "«ant»" in model_card_text(model, quote=lambda s: f"«{s}»")
    assert unavailable_reason(model, "loss") is None


def test_headless_model_says_why(model):
    model.head, model.cfg.num_classes, model.cfg.head_type = None, 0, "none"
    assert "without a classification head" in unavailable_reason(model, "loss")
    assert "no classification head" in model_card_text(model)
    assert label_smoothing_target(model) is None and training_curve_of(model) is None  # not a built-in


def test_builtin_fashion_vit():
    from model import load_model

    m = load_model("fashion-vit", device="cpu")
    assert model_card_text(m).startswith("# fashion-vit")  # the shipped card, not a generated one
    eps = 1 - label_smoothing_target(m)  # 1 − ε + ε/K with K = 10
    assert 0 < eps < 0.5
    assert isinstance(training_curve_of(m), dict)

