"""Small numpy numerics shared by the model layer (no torch): softmax and log-softmax.

Both work on the last axis, in float64, stably (the maximum is subtracted first), so a logit
of 1000 neither overflows nor turns the rest into NaN.
"""
from __future__ import annotations

import numpy as np


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """log softmax(x) along `axis`, float64: x − max − log Σ exp(x − max)."""
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(x, axis: int = -1) -> np.ndarray:
    """softmax(x) along `axis`, float64; every slice sums to 1."""
    z = np.asarray(x, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
