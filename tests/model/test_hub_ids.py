"""One hub repo-id rule (model.hub.canonical_repo_id) and one spelling per allowed repo (issue 13)."""
from __future__ import annotations

import pytest

from model.hub import canonical_repo_id, is_known

ALLOW = ("google/vit-base-patch16-224", "facebook/dinov2-small")


@pytest.mark.parametrize("text", ["google/vit-base-patch16-224", "  facebook/dinov2-small ", "a/b", "A_1/b.c-d",
                                  "o/" + "n" * 96])
def test_valid_ids_pass_as_typed(text):
    assert canonical_repo_id(text) == text.strip()


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ("vit-base", "exactly one '/'"),
    ("a/b/c", "exactly one '/'"),
    ("/b", "owner is empty"),
    ("a/", "name is empty"),
    ("a b/c", "contains ' '"),
    ("hf:a/b", "contains ':'"),
    ("a/b?x=1", "contains '=', '?'"),
    ("-a/b", "starts or ends with '-' or '.'"),
    ("a/b.", "starts or ends with '-' or '.'"),
    ("a/b--c", "contains '--' or '..'"),
    ("a/../b", "exactly one '/'"),
    ("../b", "starts or ends with"),
    ("a/b..c", "contains '--' or '..'"),
    ("a/b.git", "ends in '.git'"),
    ("o/" + "n" * 97, "97 characters long"),
    ("ü/b", "contains 'ü'"),
])
def test_bad_ids_say_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match="e.g. google/vit-base-patch16-224") as err:
        canonical_repo_id(text)
    assert problem in str(err.value)


def test_an_allowed_id_has_one_spelling():
    assert canonical_repo_id("Google/ViT-Base-Patch16-224", ALLOW) == "google/vit-base-patch16-224"
    assert canonical_repo_id("FACEBOOK/DINOV2-SMALL", ALLOW) == "facebook/dinov2-small"
    assert canonical_repo_id("Someone/Else", ALLOW) == "Someone/Else"  # not allowed: returned as typed
    assert is_known("GOOGLE/vit-base-patch16-224", ALLOW) and not is_known("someone/else", ALLOW)


def test_load_hub_uses_the_rule():
    from model.loading import load_hub

    with pytest.raises(ValueError, match="contains '--' or '..'"):
        load_hub("a/b--c")
