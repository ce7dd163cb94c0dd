"""Input validation shared by the builders: errors name the bad value, the expected one, and the fix."""

from __future__ import annotations

import numpy as np

from model.array_checks import float_array, image_array  # noqa: F401  (viz's own checks build on them)


def patch_size_for(image: np.ndarray, grid: tuple[int, int], patch_size: int | None = None) -> int:
    """The patch size P such that image is ``[h*P, w*P]``; checks ``patch_size`` if given."""
    H, W = image.shape[:2]
    h, w = int(grid[0]), int(grid[1])
    if patch_size is not None:
        P = int(patch_size)
        if P < 1:
            raise ValueError(f"patch_size={patch_size!r}; expected a positive integer such as 16 or 14.")
        if (H, W) != (h * P, w * P):
            raise ValueError(
                f"image is {H}x{W} px but the map grid is {h}x{w} with patch_size={P} "
                f"(expects {h * P}x{w * P} px). Fix: pass the preprocessed model input and the map of the same model."
            )
        return P
    if H % h or W % w or H // h != W // w:
        raise ValueError(
            f"image is {H}x{W} px, which is not a {h}x{w} grid of square patches. "
            f"Fix: pass the preprocessed model input (H_px = h*P, W_px = w*P) or set patch_size."
        )
    return H // h


def check_prefix(num_prefix_tokens: int, prefix_names=None) -> list[str]:
    """Names of the prefix tokens (CLS, then DIST, then registers), validated."""
    p = int(num_prefix_tokens)
    if p < 0:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens!r}; expected >= 0 (1 for CLS only).")
    if prefix_names is None:
        return default_prefix_names(p)
    names = [str(n) for n in prefix_names]
    if len(names) != p:
        raise ValueError(
            f"prefix_names has {len(names)} names {names} but num_prefix_tokens={p}; "
            f"expected one name per prefix token, e.g. {default_prefix_names(p)}."
        )
    return names


def default_prefix_names(p: int) -> list[str]:
    """``CLS`` for token 0, then ``TOK1``, ``TOK2``... (callers who know DIST/REG pass names)."""
    return (["CLS"] + [f"TOK{i}" for i in range(1, p)])[:p]


def check_count(n, what: str = "top") -> int:
    """A whole number of things to show, at least 1 (``top=8`` keys, ``bins=40``)."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or int(n) < 1:
        raise ValueError(f"{what}={n!r}; expected a whole number of tokens to show, at least 1 (e.g. 8).")
    return int(n)
