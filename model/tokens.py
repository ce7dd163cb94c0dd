"""One token numbering and one set of token names for every label Patchlight shows.

Tokens are numbered 0…T−1 in the model's order (DESIGN "Token order"): the p prefix tokens
first — CLS, then the distillation token DIST, then the registers REG0, REG1, … — then the
N = h·w patches row-major. A patch is always named by its *patch* index 0…N−1 (token t is
patch t − p), never by its token index, so "patch 24" is the same square of the image on the
grid, in the walk-through and in every table, with or without registers (issue 10, item 9).

    token_name(28, 4, (16, 16), ["CLS", "REG0", "REG1", "REG2"])  ->  "patch 24 (row 1, col 8)"
    short_token_name(28, …)                                        ->  "p24 (r1,c8)"

Plain Python (no torch, no numpy): the app, viz callers and the CLI share it.
"""
from __future__ import annotations

# The prefix vocabulary, defined once (model.config.ViTConfig.prefix_names uses it).
CLS_NAME = "CLS"
DIST_NAME = "DIST"
REGISTER_PREFIX = "REG"


def prefix_names(class_token: bool = True, distill_token: bool = False, num_register_tokens: int = 0) -> list[str]:
    """The names of a model's prefix tokens in token order: CLS, DIST, REG0, REG1, …"""
    names = [CLS_NAME] if class_token else []
    names += [DIST_NAME] if distill_token else []
    names += [f"{REGISTER_PREFIX}{i}" for i in range(int(num_register_tokens))]
    return names


def _check(num_prefix_tokens: int, grid, prefix_names) -> tuple[int, int, int, list[str]]:
    p = int(num_prefix_tokens)
    h, w = (int(g) for g in grid)
    names = [str(n) for n in prefix_names]
    if len(names) != p:
        raise ValueError(
            f"{len(names)} prefix names {names} for num_prefix_tokens={p}; pass one name per prefix token "
            "(trace.prefix_names or ViTConfig.prefix_names())"
        )
    return p, h, w, names


def _check_token(t, p: int, h: int, w: int) -> int:
    """Token t checked against T = p + h·w; returns t."""
    T = p + h * w
    if isinstance(t, bool) or not 0 <= int(t) < T or int(t) != t:
        raise ValueError(
            f"token {t!r} is out of range; tokens are 0…{T - 1} ({p} prefix tokens + {h}×{w} patches)"
        )
    return int(t)


def patch_index(t: int, num_prefix_tokens: int) -> int | None:
    """The patch index 0…N−1 of token t, or None for a prefix token."""
    t, p = int(t), int(num_prefix_tokens)
    return None if t < p else t - p


def patch_position(patch: int, grid) -> tuple[int, int]:
    """(row, col) of patch `patch` on the (h, w) grid, row-major."""
    return divmod(int(patch), int(grid[1]))


def _patch_name(patch: int, w: int, short: bool) -> str:
    r, c = divmod(patch, w)
    return f"p{patch} (r{r},c{c})" if short else f"patch {patch} (row {r}, col {c})"


def token_name(t: int, num_prefix_tokens: int, grid, prefix_names) -> str:
    """The full name of token t: a prefix name (``CLS``, ``DIST``, ``REG0``…) or
    ``patch 24 (row 3, col 3)`` — the patch index, then its row and column on the grid."""
    p, h, w, names = _check(num_prefix_tokens, grid, prefix_names)
    t = _check_token(t, p, h, w)
    return names[t] if t < p else _patch_name(t - p, w, short=False)


def short_token_name(t: int, num_prefix_tokens: int, grid, prefix_names) -> str:
    """A compact, unique name for axis labels: a prefix name, or ``p24 (r3,c3)`` for patch 24."""
    p, h, w, names = _check(num_prefix_tokens, grid, prefix_names)
    t = _check_token(t, p, h, w)
    return names[t] if t < p else _patch_name(t - p, w, short=True)


def token_names(num_prefix_tokens: int, grid, prefix_names) -> list[str]:
    """`token_name` of every token 0…T−1."""
    p, h, w, names = _check(num_prefix_tokens, grid, prefix_names)
    return names + [_patch_name(i, w, short=False) for i in range(h * w)]


def short_token_names(num_prefix_tokens: int, grid, prefix_names) -> list[str]:
    """`short_token_name` of every token 0…T−1."""
    p, h, w, names = _check(num_prefix_tokens, grid, prefix_names)
    return names + [_patch_name(i, w, short=True) for i in range(h * w)]
