"""Checks of the plain arrays that maps and images arrive as: each failure says the shape or
type that was expected and how to fix the call (shared by model.overlay and viz)."""

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
