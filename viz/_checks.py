"""Input validation shared by the builders: errors name the bad value, the expected one, and the fix."""

from __future__ import annotations

import numpy as np


def image_array(image, name: str = "image") -> np.ndarray:
    """A uint8 ``[H_px, W_px, 3]`` image (the model input, de-normalised)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{name} has shape {arr.shape} (channels first); expected [H_px, W_px, 3]. "
            f"Fix: pass {name}.transpose(1, 2, 0)."
        )
    if arr.ndim == 2:
        raise ValueError(
            f"{name} has shape {arr.shape} (grayscale); expected [H_px, W_px, 3]. "
            f"Fix: np.repeat({name}[..., None], 3, axis=2)."
        )
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"{name} has shape {arr.shape}; expected [H_px, W_px, 3] (RGB, channels last).")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0.0:
            hint = f"(np.clip({name}, 0, 1) * 255).round().astype(np.uint8)"
        else:
            hint = f"np.clip({name}, 0, 255).astype(np.uint8) after de-normalising pixel_values"
        raise ValueError(f"{name} has dtype {arr.dtype}; expected uint8 in 0..255. Fix: {hint}.")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} has shape {arr.shape}; it must have at least one pixel.")
    return arr


def float_array(values, ndim: int, name: str, expected: str, allow_nan: bool = False) -> np.ndarray:
    """A finite float64 array with ``ndim`` dimensions (``expected`` describes them)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} could not be read as a float array; expected {expected}.") from err
    if arr.ndim != ndim:
        fix = ""
        if arr.ndim == ndim + 1 and arr.shape[0] == 1:
            fix = f" Fix: drop the batch dimension with {name}[0]."
        elif arr.ndim == ndim - 1 and ndim == 2:
            fix = f" Fix: reshape the flat map to the patch grid, e.g. {name}.reshape(h, w)."
        raise ValueError(f"{name} has shape {arr.shape} ({arr.ndim}-D); expected {expected}.{fix}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected {expected}.")
    if not allow_nan and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(
            f"{name} contains {bad} NaN/inf values; expected finite numbers. "
            f"Fix: np.nan_to_num({name}) or check the computation that produced it."
        )
    return arr


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
