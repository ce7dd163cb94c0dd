"""Data-set result files for the tests, written with pyarrow straight from the schema of issue 14
(the format ``python -m model dataset`` writes) and filled from REAL traces: fashion-vit run on
the gallery's Fashion-MNIST images, statistics from model.head_stats, maps from rollout, and the
queries and keys of one head."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SCHEMA_META = {"format": 1, "method": "rollout"}


def schema():
    import pyarrow as pa

    f32, i32 = pa.float32(), pa.int32()
    return pa.schema([
        ("image", pa.string()), ("error", pa.string()), ("height", i32), ("width", i32), ("label", i32),
        ("prediction", i32), ("prediction_name", pa.string()), ("probability", f32), ("logits", pa.list_(f32)),
        ("grid", pa.list_(i32)), ("mean_attention_distance", pa.list_(pa.list_(f32))),
        ("attention_entropy", pa.list_(pa.list_(f32))), ("prefix_attention", pa.list_(pa.list_(f32))),
        ("artifact_tokens", pa.list_(i32)), ("map", pa.list_(pa.list_(f32))),
        ("queries", pa.list_(pa.list_(f32))), ("keys", pa.list_(pa.list_(f32))),
    ])


def trace_rows(model, image_paths, labels, qk=(1, 0)) -> tuple[list[dict], dict]:
    """One row per image from the model's real trace, and the metadata."""
    from PIL import Image

    from model import attention_rollout, patch_map
    from model.head_stats import (
        artifact_tokens,
        attention_entropy,
        mean_attention_distance,
        prefix_attention,
    )

    rows = []
    for path, label in zip(image_paths, labels):
        with Image.open(path) as im:
            width, height = im.size
            trace = model.trace([im.convert("RGB")]).numpy()
        A, p = trace.attentions[0], trace.num_prefix_tokens
        logits = trace.logits[0] if trace.logits is not None else None
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum() if logits is not None else None
        top = int(np.argmax(logits)) if logits is not None else None
        rows.append({
            "image": str(path), "error": None, "height": height, "width": width, "label": label,
            "prediction": top, "prediction_name": trace.class_names()[top] if top is not None else None,
            "probability": float(probs[top]) if top is not None else None,
            "logits": logits.tolist() if logits is not None else None, "grid": list(trace.grid),
            "mean_attention_distance": mean_attention_distance(A, trace.grid, trace.patch_size, p).tolist(),
            "attention_entropy": attention_entropy(A).tolist(),
            "prefix_attention": prefix_attention(A, p).tolist(),
            "artifact_tokens": artifact_tokens(trace.hidden_states[0], p, grid=trace.grid).patch_indices.tolist(),
            "map": patch_map(attention_rollout(A, num_prefix_tokens=p)[0], trace.grid, p).tolist(),
            "queries": trace.queries[0][qk[0], qk[1]].tolist(), "keys": trace.keys[0][qk[0], qk[1]].tolist(),
        })
    meta = dict(SCHEMA_META, model="fashion-vit", patch_size=int(trace.patch_size), num_prefix_tokens=int(p),
                prefix_names=list(trace.prefix_names), layers=int(trace.L), heads=int(trace.H),
                class_names=trace.class_names() or None, qk_layer=qk[0], qk_head=qk[1])
    return rows, meta


def error_row(image: str, reason: str) -> dict:
    return {"image": image, "error": reason}


def write(path: Path, rows: list[dict], meta: dict | None, *, drop=(), sch=None) -> Path:
    """Rows (missing keys null) with ``meta`` as the ``patchlight`` schema metadata, as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sch = sch or schema()
    for name in drop:
        sch = sch.remove(sch.get_field_index(name))
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in sch} for r in rows], schema=sch)
    if meta is not None:
        table = table.replace_schema_metadata({b"patchlight": json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def fashion_rows(qk=(1, 0)):
    """Real rows of fashion-vit over the ten gallery tiles (label = the tile's class) plus one failure."""
    from model import load_model
    from model.gallery import list_samples

    samples = [s for s in list_samples() if s.kind == "fashion"]
    model = load_model("fashion-vit", device="cpu")
    rows, meta = trace_rows(model, [s.path for s in samples], [s.label_index for s in samples], qk)
    rows.append(error_row("missing/broken.png", "cannot identify image file"))
    return rows, meta
