"""The per-batch function of dataset mode: records in, one Parquet row per image out.

`dataset_rows(model, records, options)` is what both engines run — the local engine on each
shard, the Ray engine (`model.ray_engine`) on each Ray Data batch — so their outputs agree.
Each row holds the prediction, the per-head statistics of `model.head_stats` and one map of
`model.explain.explanation_maps` (any of its METHODS; class methods get the attention gradients).

Symbols: L layers, H heads, T tokens (p prefix + N patches), d head width, (h, w) the patch grid.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import torch

from .batching import Prepared, Progress, prepare, stack, trace_batches
from .explain import CLASS_METHODS, GRADIENT_METHODS, explanation_maps, explanation_request, trace_relevance
from .head_stats import artifact_tokens, attention_entropy, mean_attention_distance, prefix_attention
from .numerics import softmax
from .vit import ViT

_F32 = pa.list_(pa.float32())
_MATRIX = pa.list_(_F32)
COLUMNS = [
    ("image", pa.string()), ("error", pa.string()), ("height", pa.int32()), ("width", pa.int32()),
    ("label", pa.int32()), ("prediction", pa.int32()), ("prediction_name", pa.string()),
    ("probability", pa.float32()), ("logits", _F32), ("grid", pa.list_(pa.int32())),
    ("mean_attention_distance", _MATRIX), ("attention_entropy", _MATRIX), ("prefix_attention", _MATRIX),
    ("artifact_tokens", pa.list_(pa.int32())), ("map", _MATRIX),
]
QK_COLUMNS = [("queries", _MATRIX), ("keys", _MATRIX)]


def schema(options) -> pa.Schema:
    """The shards' columns: `COLUMNS`, and `queries`/`keys` [T][d] when options.qk is set."""
    return pa.schema(COLUMNS + (QK_COLUMNS if options.qk is not None else []))


def check_options(model: ViT, options) -> None:
    """Refuse, before any image is read, what this model cannot do (one-line ValueErrors)."""
    explanation_request(model, options.method)  # unknown method, or a class method without a head
    if options.qk is not None:
        layer, head = options.qk
        L, H = model.cfg.depth, model.cfg.num_heads
        if not (0 <= layer < L and 0 <= head < H):
            raise ValueError(f"--qk {layer},{head} is out of range; this model has layers 0…{L - 1} and heads "
                             f"0…{H - 1}")
    if options.batch_size is not None and options.batch_size < 1:
        raise ValueError(f"batch size {options.batch_size} must be at least 1")


def dataset_meta(model: ViT, source: str, options) -> dict:
    """The schema metadata `patchlight` (DESIGN of dataset mode; format 1)."""
    cfg = model.cfg
    return {
        "format": 1, "model": str(source), "method": options.method, "patch_size": int(cfg.patch_size),
        "num_prefix_tokens": int(cfg.num_prefix_tokens), "prefix_names": list(cfg.prefix_names()),
        "layers": int(cfg.depth), "heads": int(cfg.num_heads),
        "class_names": list(cfg.class_names) if cfg.has_head and cfg.class_names else None,
        "qk_layer": options.qk[0] if options.qk else None, "qk_head": options.qk[1] if options.qk else None,
    }


def _label(value) -> int | None:
    """A record's label as int; None, NaN (pandas' missing int) and "" are no label."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def dataset_rows(model: ViT, records: list[dict], options, progress: Progress | None = None) -> pa.Table:
    """One row per record, in order (see `schema`); a record that cannot be read is a row with `error`."""
    labels = [_label(r.get("label")) for r in records]
    prepared: list[Prepared] = []
    for i, r in enumerate(records):
        data = r.get("data")
        if data is None and r.get("path") is None:
            prepared.append(Prepared(i, r["image"], error=f"{r['image']}: no image bytes in this row"))
        else:
            prepared.append(prepare(model, data if data is not None else r["path"], i, r["image"]))
    rows = [{"image": p.name, "error": p.error} for p in prepared]
    if progress is not None:
        progress.update(sum(p.error is not None for p in prepared))

    def given_labels(batch):  # --explain-label true: the given label; the top class where none (or not a class)
        K = model.cfg.num_classes
        given = [labels[p.index] if labels[p.index] is not None and 0 <= labels[p.index] < K else None for p in batch]
        if any(g is None for g in given):
            with torch.inference_mode():
                top = model(stack(model, batch))[0].argmax(-1).tolist()
            given = [t if g is None else g for g, t in zip(given, top)]
        return given

    explained = None  # the class each map explains: None = the top class
    if options.method in CLASS_METHODS and options.explain_label != "top":
        explained = given_labels
    grad_class = (explained or "top") if options.method in GRADIENT_METHODS else None
    for batch, trace in trace_batches(model, prepared, options.batch_size, grad_class, progress):
        classes = explained(batch) if explained is not None and grad_class is None else [None] * len(batch)
        for b, p in enumerate(batch):
            relevance, _ = trace_relevance(model, trace, b, options.method, classes[b])
            rows[p.index] = _row(trace, b, p, labels[p.index], options, relevance)
    return pa.Table.from_pylist(rows, schema=schema(options))


def _row(trace, b: int, item: Prepared, label: int | None, options, relevance=None) -> dict:
    """Image b of a numpy trace as one row; relevance: what a model method's map needs
    (`model.explain.trace_relevance`)."""
    p, grid = trace.num_prefix_tokens, trace.grid
    a = trace.attentions[b]  # [L, H, T, T]
    grads = trace.attention_grads[b] if trace.attention_grads is not None else None
    (heat,) = explanation_maps(a, grads, num_prefix_tokens=p, grid=grid, methods=(options.method,),
                              relevance=relevance).values()
    row = {
        "image": item.name, "error": None, "height": item.size[0], "width": item.size[1], "label": label,
        "grid": list(grid),
        "mean_attention_distance": mean_attention_distance(a, grid, trace.patch_size, p).astype(np.float32).tolist(),
        "attention_entropy": attention_entropy(a).astype(np.float32).tolist(),
        "prefix_attention": prefix_attention(a, p).astype(np.float32).tolist(),
        "artifact_tokens": artifact_tokens(trace.hidden_states[b], p, layer=-1, grid=grid).patch_indices.tolist(),
        "map": np.asarray(heat, np.float32).tolist(),  # [h, w]
    }
    if trace.logits is not None:
        logits = np.asarray(trace.logits[b], np.float32)
        probs = softmax(logits.astype(np.float64))
        top = int(np.argmax(logits))
        row.update(prediction=top, probability=float(probs[top]), logits=logits.tolist(),
                   prediction_name=trace.labels[top] if trace.labels else None)
    if options.qk is not None:
        layer, head = options.qk
        row["queries"] = trace.queries[b, layer, head].tolist()  # [T, d]
        row["keys"] = trace.keys[b, layer, head].tolist()  # [T, d]
    return row
