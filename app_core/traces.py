"""One image's trace for the app: run the model once per (model, image), read-only arrays
that the caches share between sessions, and the sizes the walkthrough quotes."""
from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np
import torch

from .uploads import decode_upload

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
