"""Is this input like the images the model was trained on? An out-of-distribution check.

fashion-vit labels anything: a cat photo comes out as 'Ankle boot' at 0.9. The top
probability cannot tell (label smoothing caps a confident answer near 0.91 and photos reach
it too), so the check looks at the input and at the model's own features instead, with
statistics fitted once on the 60,000 Fashion-MNIST training images (`python -m model.fit_ood`)
and stored next to the weights (`ood.safetensors` + `ood.json`). Three tests; an image is
*far* when any one fails:

1. **Features** — Mahalanobis distance of the CLS token of the final residual stream zL to
   the nearest class mean, under one covariance shared by all classes (Lee et al., "A Simple
   Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks",
   NeurIPS 2018):  d(f) = min_c sqrt((f − μ_c)ᵀ Σ⁻¹ (f − μ_c)).
   The token is taken *before* the final LayerNorm: the norm divides away the feature's
   size, which is much of what tells a photo apart (measured: the normalised token the head
   reads catches 1 of the 8 gallery photos, the un-normalised one 6).
2. **Pixel layout** — Fashion-MNIST is one garment, light on a pure black background. Each
   pixel of the model's 28×28 input is "ink" (brighter than `ink_level`) or not; a naive
   Bayes model gives each class c and pixel k the training frequency p_ck of ink there
   (add-one smoothed). Surprise = min_c −Σ_k log p(m_k | c), in nats. Photos have texture
   and background everywhere and fail this test even when their features pass.
3. **Blank** — every training image spans the full 0…255 range; an input whose pixels span
   less than `blank_range` is one flat shade (a blank page is not a garment either).

Tests 1 and 2 each get a limit at the same training quantile, chosen so that together they
flag 1% of the training images. `score` is the larger of the two statistics divided by its
limit: above 1.0 the image is far. A check costs well under a millisecond beyond the trace.
Models without stored statistics (dinov2-small, hub and path models) get no check: None.
"""
from __future__ import annotations

import functools
import hashlib
import json
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from .trace import Trace, to_numpy

STATS_NAME = "ood.safetensors"
INFO_NAME = "ood.json"
INK_LEVEL = 0.05  # a pixel brighter than this (0…1, as the model sees it) is ink
BLANK_RANGE = 0.1  # max − min below this: one flat shade (Fashion-MNIST's smallest range is 254/255)
TARGET_RATE = 0.01  # the fraction of training images the check may flag


@dataclass
class OodStats:
    """What the check needs, fitted on training images. Symbols: K classes, D width, H×W input pixels."""

    class_means: np.ndarray  # [K, D] μ_c of the CLS token of zL (before the final norm)
    whitener: np.ndarray  # [D, D] lower-triangular W = chol(Σ)⁻¹, so (f−μ)ᵀΣ⁻¹(f−μ) = |W(f−μ)|²
    ink_counts: np.ndarray  # [K, H·W] training images of class c with ink at pixel k
    class_counts: np.ndarray  # [K] training images of class c
    input_size: tuple[int, int]  # (H, W)
    image_mean: float  # the model's normalisation, to read pixels back from its input
    image_std: float
    feature_limit: float  # Mahalanobis distance above which test 1 fails
    layout_limit: float  # ink-layout surprise (nats) above which test 2 fails
    ink_level: float = INK_LEVEL
    blank_range: float = BLANK_RANGE
    info: dict = field(default_factory=dict)  # domain, suggestion, fingerprint, measured figures

    def __post_init__(self):
        # Precomputed once: the per-image work is then two small matrix products.
        self._w_means = self.class_means @ self.whitener.T  # [K, D]: W μ_c
        p = (self.ink_counts + 1.0) / (self.class_counts[:, None] + 2.0)  # add-one smoothing
        self._log_ink = np.log(p)  # [K, H·W]
        self._log_bg = np.log1p(-p)
        self._bg_total = self._log_bg.sum(1)  # [K]: every pixel background

    # ---- the three statistics, batched ------------------------------------------------------
    def feature_distance(self, cls_tokens: np.ndarray) -> np.ndarray:
        """[B, D] CLS tokens of zL -> [B] Mahalanobis distance to the nearest class mean."""
        wf = np.asarray(cls_tokens, dtype=np.float64) @ self.whitener.T  # [B, D]
        d2 = ((wf[:, None, :] - self._w_means[None]) ** 2).sum(-1)  # [B, K]
        return np.sqrt(d2.min(1))

    def layout_surprise(self, images01: np.ndarray) -> np.ndarray:
        """[B, H, W] model input in 0…1 -> [B] −log p(ink mask | best class), nats."""
        ink = (np.asarray(images01).reshape(len(images01), -1) > self.ink_level).astype(np.float64)  # [B, H·W]
        loglik = ink @ (self._log_ink - self._log_bg).T + self._bg_total  # [B, K]
        return -loglik.max(1)

    def pixel_range(self, images01: np.ndarray) -> np.ndarray:
        flat = np.asarray(images01).reshape(len(images01), -1)
        return flat.max(1) - flat.min(1)

    def scores(self, cls_tokens: np.ndarray, images01: np.ndarray) -> np.ndarray:
        """[B] combined score: the larger of (distance / its limit, surprise / its limit)."""
        return np.maximum(self.feature_distance(cls_tokens) / self.feature_limit,
                          self.layout_surprise(images01) / self.layout_limit)

    # ---- files ------------------------------------------------------------------------------
    def as_stored(self) -> "OodStats":
        """The same statistics at the precision `save` writes (float32), so limits measured with the
        result hold for the files."""
        D = self.class_means.shape[1]
        whitener = np.zeros((D, D))
        whitener[np.tril_indices(D)] = self.whitener[np.tril_indices(D)].astype(np.float32)
        return OodStats(self.class_means.astype(np.float32).astype(np.float64), whitener, self.ink_counts,
                        self.class_counts, self.input_size, self.image_mean, self.image_std,
                        self.feature_limit, self.layout_limit, self.ink_level, self.blank_range, dict(self.info))

    def save(self, directory: str | Path) -> tuple[Path, Path]:
        """Write `ood.safetensors` (arrays, float32/int16, ~38 KB) and `ood.json` (everything else)."""
        directory = Path(directory)
        rows, cols = np.tril_indices(len(self.whitener))
        arrays = {
            "class_means": self.class_means.astype(np.float32),
            "whitener_tril": self.whitener[rows, cols].astype(np.float32),  # packed: half the bytes
            "ink_counts": self.ink_counts.astype(np.int16),
            "class_counts": self.class_counts.astype(np.int32),
        }
        stats_path, info_path = directory / STATS_NAME, directory / INFO_NAME
        save_file(arrays, str(stats_path))
        scalars = {
            "format": "patchlight-ood/1",
            "input_size": list(self.input_size), "image_mean": self.image_mean, "image_std": self.image_std,
            "feature_limit": self.feature_limit, "layout_limit": self.layout_limit,
            "ink_level": self.ink_level, "blank_range": self.blank_range, "threshold": 1.0,
            **self.info,
        }
        info_path.write_text(json.dumps(scalars, indent=2, ensure_ascii=False) + "\n")
        return stats_path, info_path

    @classmethod
    def load(cls, directory: str | Path) -> "OodStats":
        directory = Path(directory)
        arrays = load_file(str(directory / STATS_NAME))
        meta = json.loads((directory / INFO_NAME).read_text())
        known = {"format", "input_size", "image_mean", "image_std", "feature_limit", "layout_limit",
                 "ink_level", "blank_range", "threshold"}
        D = arrays["class_means"].shape[1]
        whitener = np.zeros((D, D))
        whitener[np.tril_indices(D)] = arrays["whitener_tril"]
        return cls(
            class_means=arrays["class_means"].astype(np.float64),
            whitener=whitener,
            ink_counts=arrays["ink_counts"].astype(np.float64),
            class_counts=arrays["class_counts"].astype(np.float64),
            input_size=tuple(meta["input_size"]),
            image_mean=float(meta["image_mean"]), image_std=float(meta["image_std"]),
            feature_limit=float(meta["feature_limit"]), layout_limit=float(meta["layout_limit"]),
            ink_level=float(meta["ink_level"]), blank_range=float(meta["blank_range"]),
            info={k: v for k, v in meta.items() if k not in known},
        )


@dataclass
class OodResult:
    """The verdict on one image. far = score > threshold; message says what is wrong and what to do."""

    score: float  # max(distance / its limit, surprise / its limit); a blank image scores inf
    threshold: float  # 1.0: the limits are already in the score
    far: bool
    message: str  # "" when the image is not far
    tests: dict  # each test's statistic and limit, for a details view

    def to_json(self) -> dict:
        """The CLI's `out_of_distribution` field."""
        score = self.score if np.isfinite(self.score) else None  # JSON has no infinity
        return {"score": score, "threshold": self.threshold, "message": self.message, "tests": self.tests}


# ---- fitting ---------------------------------------------------------------------------------
def model_inputs(model, images) -> torch.Tensor:
    """uint8 [N, H, W] grayscale at the model's input size (preprocessed exactly as the Preprocessor
    does: gray repeated, rescaled, normalised), or an already preprocessed float [N, 3, H, W]."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        return images
    pre = model.preprocessor
    x = torch.as_tensor(np.asarray(images)).float() * pre.rescale_factor  # [N, H, W]
    mean, std = pre.image_mean[0], pre.image_std[0]
    return ((x - mean) / std)[:, None].expand(-1, model.cfg.in_chans, -1, -1)  # [N, 3, H, W]


@torch.inference_mode()
def ood_inputs(model, pixels: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(CLS token of zL [B, D], input pixels in 0…1 [B, H, W]) with the fused forward, in batches."""
    tokens, images = [], []
    pre = model.preprocessor
    for i in range(0, len(pixels), batch_size):
        x = pixels[i : i + batch_size].to(model.device, model.pos_embed.dtype)
        z = model.embed(x).z  # (B, T, D)
        for block in model.blocks:
            z = block(z)  # the fused pass, (B, T, D)
        tokens.append(z[:, 0].double().cpu().numpy())  # zL[cls], before the final norm
        images.append((x[:, 0].double().cpu().numpy() * pre.image_std[0]) + pre.image_mean[0])
    return np.concatenate(tokens), np.concatenate(images)


def fit_ood(model, images, labels=None, target_rate: float = TARGET_RATE, info: dict | None = None) -> OodStats:
    """Fit the check on training `images` (see `model_inputs`); `labels` [N] default to the model's own
    predictions. Limits: one training quantile for tests 1 and 2 such that together they flag
    `target_rate` of these images (found by bisection; deterministic)."""
    pixels = model_inputs(model, images)
    cls_tokens, images01 = ood_inputs(model, pixels)
    if labels is None:
        with torch.inference_mode():
            labels = torch.cat([model(pixels[i : i + 1000].to(model.device))[0].argmax(1).cpu()
                                for i in range(0, len(pixels), 1000)]).numpy()
    labels = np.asarray(labels, dtype=np.int64)
    K = model.cfg.num_classes
    if labels.min() < 0 or labels.max() >= K or len(np.unique(labels)) != K:
        raise ValueError(f"labels must cover every one of the model's {K} classes (got {np.unique(labels)})")
    # Lee et al. 2018: class means, one covariance of the deviations from them (float64 sums).
    means = np.stack([cls_tokens[labels == c].mean(0) for c in range(K)])  # [K, D]
    dev = cls_tokens - means[labels]
    cov = dev.T @ dev / len(dev)  # [D, D]
    whitener = np.linalg.inv(np.linalg.cholesky(cov))  # lower-triangular
    ink = (images01.reshape(len(images01), -1) > INK_LEVEL)
    ink_counts = np.stack([ink[labels == c].sum(0) for c in range(K)]).astype(np.float64)
    class_counts = np.bincount(labels, minlength=K).astype(np.float64)
    pre = model.preprocessor
    stats = OodStats(means, whitener, ink_counts, class_counts, tuple(images01.shape[1:]),
                     float(pre.image_mean[0]), float(pre.image_std[0]), 1.0, 1.0, info=dict(info or {}))
    stats = stats.as_stored()  # limits measured with exactly what will be stored (float32)
    dist, surprise = stats.feature_distance(cls_tokens), stats.layout_surprise(images01)

    def rate(q):
        return float(np.mean((dist > np.quantile(dist, q)) | (surprise > np.quantile(surprise, q))))

    lo, hi = 1.0 - target_rate, 1.0  # the union flags at least as many as either test alone
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(mid) > target_rate else (lo, mid)
    stats.feature_limit = float(np.quantile(dist, hi))
    stats.layout_limit = float(np.quantile(surprise, hi))
    stats.info.update(fit_images=int(len(labels)), fit_quantile=round(hi, 6),
                      train_flag_rate=rate(hi))
    return stats


# ---- finding a model's statistics -------------------------------------------------------------
def stats_dir(model) -> Path | None:
    """Where a model's statistics would be: next to its weights (built-in or a Patchlight directory)."""
    from .builtins import BUILTIN_NAMES, HERE

    source = str(getattr(model, "source", ""))
    if source in BUILTIN_NAMES:
        directory = HERE / "weights" / source
    else:
        directory = Path(source)
        if not source or source.startswith("hf:") or not directory.is_dir():
            return None
    return directory if (directory / STATS_NAME).is_file() and (directory / INFO_NAME).is_file() else None


def weights_fingerprint(model) -> str:
    """sha256 over the parameters (name, shape, float32 bytes): ties statistics to the weights they fit."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _load_stats(directory: str, mtime_ns: int) -> OodStats:
    return OodStats.load(directory)


_STATS_OF: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> OodStats | None


def ood_stats(model) -> OodStats | None:
    """The model's fitted statistics, or None: none stored, or stored for other weights (warned once)."""
    if model in _STATS_OF:
        return _STATS_OF[model]
    found = None
    directory = stats_dir(model)
    if directory is not None:
        stats = _load_stats(str(directory), (directory / STATS_NAME).stat().st_mtime_ns)
        if stats.info.get("weights_sha256") == weights_fingerprint(model):
            found = stats
        else:
            warnings.warn(f"{directory / STATS_NAME} was fitted for other weights, so there is no "
                          "out-of-distribution check; refit it with `python -m model.fit_ood --model "
                          f"{directory.name}`", stacklevel=2)
    _STATS_OF[model] = found
    return found


# ---- the check -------------------------------------------------------------------------------
def check_ood(model, trace_or_pixels, index: int = 0) -> OodResult | None:
    """Is image `index` of a `Trace` (or of a preprocessed [B, 3, H, W] pixel tensor) far from the
    training images? None when the model has no fitted statistics (no check is possible)."""
    stats = ood_stats(model)
    if stats is None:
        return None
    if isinstance(trace_or_pixels, Trace):
        return check_trace(stats, trace_or_pixels, index)
    token, image01 = ood_inputs(model, trace_or_pixels[index : index + 1])
    return judge(stats, token, image01)


def check_trace(stats: OodStats, trace: Trace, index: int = 0) -> OodResult:
    """`check_ood` on a trace with given statistics: reads zL[cls] and the input, computes nothing else."""
    token = to_numpy(trace.hidden_states[index, -1, 0][None], np.float64)  # zL[cls]: [1, D]
    x = to_numpy(trace.pixel_values[index, 0][None], np.float64)  # [1, H, W], normalised (torch or numpy trace)
    return judge(stats, token, x * stats.image_std + stats.image_mean)


def judge(stats: OodStats, token: np.ndarray, image01: np.ndarray) -> OodResult:
    """The verdict for one image from its zL CLS token [1, D] and its input in 0…1 [1, H, W]."""
    if tuple(image01.shape[1:]) != tuple(stats.input_size):
        raise ValueError(f"the out-of-distribution check was fitted on {stats.input_size} inputs, got "
                         f"{tuple(image01.shape[1:])}; pass the model's own preprocessed input")
    dist = float(stats.feature_distance(token)[0])
    surprise = float(stats.layout_surprise(image01)[0])
    span = float(stats.pixel_range(image01)[0])
    blank = span < stats.blank_range
    score = float("inf") if blank else max(dist / stats.feature_limit, surprise / stats.layout_limit)
    tests = {
        "feature_distance": {"value": round(dist, 3), "limit": round(stats.feature_limit, 3)},
        "pixel_layout": {"value": round(surprise, 2), "limit": round(stats.layout_limit, 2)},
        "pixel_range": {"value": round(span, 4), "limit": stats.blank_range},
    }
    far = score > 1.0
    return OodResult(score, 1.0, far, message(stats, dist, surprise, blank) if far else "", tests)


def message(stats: OodStats, dist: float, surprise: float, blank: bool) -> str:
    """One plain sentence: what is wrong, why we think so, and what to do."""
    domain = stats.info.get("domain", "the images this model was trained on")
    model_name = stats.info.get("model", "this model")
    reasons = []
    if blank:
        reasons.append("it is blank: one flat shade")
    else:
        if dist > stats.feature_limit:
            share = stats.info.get("fit_quantile", 0.99) * 100
            reasons.append(f"the model's features for it lie at distance {dist:.0f} from the nearest class, "
                           f"where {share:.1f}% of training images are within {stats.feature_limit:.0f}")
        if surprise > stats.layout_limit:
            reasons.append("its pixels are not laid out like one garment on a black background")
    text = (f"This image looks unlike the {domain} {model_name} was trained on ({'; '.join(reasons)}), "
            "so its labels mean little")
    suggestion = stats.info.get("suggestion")
    return text + (f"; {suggestion}." if suggestion else ".")


def judge_many(stats: OodStats, tokens: np.ndarray, images01: np.ndarray) -> list[OodResult | None]:
    """`judge` for a batch ([B, D] tokens, [B, H, W] inputs in 0…1) at the cost of batched statistics:
    the verdict of each image that is far, None for the others. The batched scores only pick the
    candidates; each verdict is `judge`'s own, so the rule lives in one place."""
    if len(images01) and tuple(images01.shape[1:]) != tuple(stats.input_size):
        return [judge(stats, tokens[:1], images01[:1])]  # raises judge's message about the input size
    candidates = (stats.scores(tokens, images01) > 1.0) | (stats.pixel_range(images01) < stats.blank_range)
    verdicts = [judge(stats, tokens[b : b + 1], images01[b : b + 1]) if candidates[b] else None
                for b in range(len(images01))]
    return [v if v is not None and v.far else None for v in verdicts]
