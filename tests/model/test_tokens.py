"""One token numbering (issue 10 item 9): patches are named by their patch index, everywhere."""
from __future__ import annotations

import pytest

from model import tokens
from model.config import ViTConfig


def test_patches_are_named_by_patch_index_with_or_without_registers():
    grid = (7, 7)
    plain = tokens.token_name(1 + 24, 1, grid, ["CLS"])
    with_registers = tokens.token_name(5 + 24, 5, grid, ["CLS", "REG0", "REG1", "REG2", "REG3"])
    assert plain == with_registers == "patch 24 (row 3, col 3)"
    assert tokens.token_name(5, 5, grid, ["CLS", "REG0", "REG1", "REG2", "REG3"]) == "patch 0 (row 0, col 0)"
    assert tokens.short_token_name(1 + 24, 1, grid, ["CLS"]) == "p24 (r3,c3)"


def test_prefix_tokens_keep_their_names():
    names = ["CLS", "DIST"]
    assert [tokens.token_name(t, 2, (2, 3), names) for t in range(3)] == ["CLS", "DIST", "patch 0 (row 0, col 0)"]
    assert tokens.short_token_names(2, (2, 3), names)[:3] == ["CLS", "DIST", "p0 (r0,c0)"]


def test_lists_agree_with_single_names_and_are_unique():
    names = ["CLS", "REG0", "REG1"]
    grid = (3, 4)
    full = tokens.token_names(3, grid, names)
    short = tokens.short_token_names(3, grid, names)
    assert len(full) == len(short) == 3 + 12
    assert full == [tokens.token_name(t, 3, grid, names) for t in range(15)]
    assert short == [tokens.short_token_name(t, 3, grid, names) for t in range(15)]
    assert len(set(full)) == len(set(short)) == 15
    assert full[-1] == "patch 11 (row 2, col 3)"


def test_one_prefix_vocabulary():
    assert tokens.prefix_names(True, True, 2) == ["CLS", "DIST", "REG0", "REG1"]
    assert tokens.prefix_names(False, False, 0) == []
    cfg = ViTConfig(distill_token=True, num_register_tokens=1, pos_embed_prefix=2)
    assert cfg.prefix_names() == ["CLS", "DIST", "REG0"]


def test_patch_index_and_position():
    assert tokens.patch_index(0, 1) is None and tokens.patch_index(25, 1) == 24
    assert tokens.patch_position(24, (7, 7)) == (3, 3)


@pytest.mark.parametrize("t", [-1, 7, 2.5, True])
def test_bad_token_is_named(t):
    with pytest.raises(ValueError, match="out of range; tokens are 0…6"):
        tokens.token_name(t, 1, (2, 3), ["CLS"])


def test_prefix_names_must_match_the_count():
    with pytest.raises(ValueError, match="one name per prefix token"):
        tokens.token_names(2, (2, 2), ["CLS"])
