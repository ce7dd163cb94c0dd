"""The numbers behind a figure, for download: one array per trace field, as NPZ or tidy CSV.

A figure's picture goes to PNG through plotly's own export (``app_core.figure_png``); what a
reader wants to re-plot or check is the data: ``z`` of heatmaps, ``x``/``y`` of bars and lines.
Keys are ``"<trace index>_<trace name>_<field>"``, e.g. ``"0_attention_z"``. Everything here
returns bytes or text; writing files is the caller's business.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from model.naming import slug

from ._figure import CLICK_TARGET_OPACITY

__all__ = ["figure_data", "figure_to_npz", "figure_to_csv", "data_from_csv", "typed_array", "CSV_HEADER"]

CSV_HEADER = ["key", "dtype", "row", "col", "value"]
_XY_TRACES = ("bar", "scatter", "scattergl")
_READERS = {"float": float, "int": int, "str": str}
_DTYPES = {"float": np.float64, "int": np.int64, "str": str}


def _slug(text) -> str:
    """A trace name as a key part (model.naming.slug: the one slug rule)."""
    return slug(text, sep="_", empty="trace")


# plotly's base64 typed arrays ({"dtype": "f4", "bdata": "…", "shape": "4, 6"}): how plotly.py
# writes numpy arrays, and so what a figure read back from its JSON holds (little-endian)
_TYPED_ARRAY_DTYPES = {"f8": "<f8", "f4": "<f4", "i4": "<i4", "u4": "<u4", "i2": "<i2", "u2": "<u2",
                       "i1": "i1", "u1": "u1", "u1c": "u1"}


def typed_array(values) -> np.ndarray | None:
    """A plotly base64 typed array decoded to numpy (read-only); None for anything else."""
    if not (isinstance(values, dict) and isinstance(values.get("bdata"), str)
            and values.get("dtype") in _TYPED_ARRAY_DTYPES):
        return None
    import base64

    arr = np.frombuffer(base64.b64decode(values["bdata"]), dtype=_TYPED_ARRAY_DTYPES[values["dtype"]])
    shape = values.get("shape")
    return arr.reshape([int(n) for n in str(shape).split(",")]) if shape else arr


def _decoded(values):
    """A trace field with a base64 typed array decoded to numpy; anything else as given."""
    arr = typed_array(values)
    return values if arr is None else arr


def _field(values) -> np.ndarray | None:
    """One trace field as an array: numbers as float64 (None -> NaN), categories as strings."""
    values = _decoded(values)
    if values is None:
        return None
    if isinstance(values, np.ndarray):
        return values
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    if any(isinstance(v, str) for v in items):
        return np.array(["" if v is None else str(v) for v in items])
    return np.array([np.nan if v is None else v for v in items], dtype=np.float64)


def _is_legend_key(trace) -> bool:
    """A trace with no data at all (only None): a legend entry naming a colour, nothing to export."""
    xs, ys = trace.x, trace.y
    return all(v is None for v in (xs if xs is not None else [])) and all(
        v is None for v in (ys if ys is not None else []))


def _is_hover_helper(trace) -> bool:
    """Invisible markers that only carry hover text or take clicks (one per patch over an image
    or a map: ``_figure.click_targets``, drawn at 1% or not at all): what they hold is the map's."""
    marker = getattr(trace, "marker", None)
    return (getattr(trace, "mode", None) == "markers" and marker is not None and marker.opacity is not None
            and marker.opacity <= CLICK_TARGET_OPACITY)


def image_pixels(trace) -> np.ndarray | None:
    """The pixels of an Image trace as uint8 ``[H, W, 3]``: its ``z``, or its ``source`` (a
    ``data:`` URI, see :func:`viz._figure.image_source`) decoded; None when it has neither."""
    if trace.z is not None:
        return np.asarray(_decoded(trace.z))
    src = getattr(trace, "source", None)
    if not src:
        return None
    import base64

    from PIL import Image

    head, _, payload = str(src).partition(",")
    if not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ValueError(f"image source {head[:40]!r}… is not a base64 data URI; expected data:image/…;base64,…")
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        return np.asarray(im.convert("RGB"))


def _z_scale(trace) -> float:
    """How many of a heatmap's ``z`` make one unit of its data: ``meta["z_scale"]`` where the
    figure sends whole counts (attention weights: ``viz._figure.on_wire``), else 1."""
    meta = trace.meta
    return float(meta.get("z_scale", 1)) if isinstance(meta, dict) else 1.0


def figure_data(fig, include_images: bool = False) -> dict[str, np.ndarray]:
    """The numbers behind ``fig``, keyed ``"<i>_<name>_<field>"``.

    Heatmaps give ``z`` in their data's units (``meta["z_scale"]`` divided out; and ``x``/``y``
    when set explicitly); bars and scatters give ``x`` and
    ``y`` (categories as strings) and ``error_y`` when they have error bars; images give ``image`` only with ``include_images`` (they
    are the input, so left out by default). Legend-only entries and invisible hover markers
    (patch centres that carry hover text) carry no data of the figure and are skipped.
    """
    out: dict[str, np.ndarray] = {}
    for i, trace in enumerate(fig.data):
        kind = trace.type
        key = f"{i}_{_slug(trace.name or kind)}"
        if kind == "heatmap":
            if trace.z is not None:
                out[f"{key}_z"] = np.asarray(_decoded(trace.z), dtype=np.float64) / _z_scale(trace)
            fields = ("x", "y")
        elif kind == "image":
            pixels = image_pixels(trace) if include_images else None
            if pixels is not None:
                out[f"{key}_image"] = pixels
            fields = ()
        elif kind in _XY_TRACES and not _is_legend_key(trace) and not _is_hover_helper(trace):
            fields = ("x", "y")
        else:
            fields = ()
        for name in fields:
            values = _field(getattr(trace, name))
            if values is not None:
                out[f"{key}_{name}"] = values
        error = getattr(trace, "error_y", None) if fields else None
        if error is not None and error.array is not None:  # the spread of a mean (± std bars)
            out[f"{key}_error_y"] = _field(error.array)
    return out


def figure_to_npz(fig, include_images: bool = False) -> bytes:
    """:func:`figure_data` as compressed ``.npz`` bytes (``np.load(io.BytesIO(b))`` reads them)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **figure_data(fig, include_images))
    return buf.getvalue()


def _kind(arr: np.ndarray) -> str:
    if arr.dtype.kind in "US":
        return "str"
    return "int" if arr.dtype.kind in "iub" else "float"


def figure_to_csv(fig, include_images: bool = False) -> str:
    """:func:`figure_data` as tidy CSV, one value a row: ``key,dtype,row,col,value``.

    ``col`` is empty for 1-D arrays; arrays of more than two dimensions are flattened to
    ``[rows, -1]``. Floats are written with ``repr`` (an exact round trip, ``nan`` for gaps);
    :func:`data_from_csv` reads the text back.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for key, values in figure_data(fig, include_images).items():
        arr = np.asarray(values)
        kind = _kind(arr)
        if arr.ndim > 2:
            arr = arr.reshape(arr.shape[0], -1)
        cells = arr.tolist()
        if arr.ndim == 1:
            rows = ((r, "", v) for r, v in enumerate(cells))
        else:
            rows = ((r, c, v) for r, line in enumerate(cells) for c, v in enumerate(line))
        for r, c, v in rows:
            writer.writerow([key, kind, r, c, repr(float(v)) if kind == "float" else v])
    return buf.getvalue()


def data_from_csv(text: str) -> dict[str, np.ndarray]:
    """Read :func:`figure_to_csv` text back into ``{key: array}`` (the arrays it was written from)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != CSV_HEADER:
        raise ValueError(f"not a Patchlight figure CSV: expected the header {','.join(CSV_HEADER)}; got "
                         f"{','.join(rows[0]) if rows else 'an empty file'}.")
    cells: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for key, kind, r, c, value in rows[1:]:
        kinds.setdefault(key, kind)
        cells.setdefault(key, []).append((int(r), None if c == "" else int(c), _READERS[kind](value)))
    out = {}
    for key, items in cells.items():
        dtype = _DTYPES[kinds[key]]
        if items[0][1] is None:
            out[key] = np.array([v for _, _, v in sorted(items, key=lambda item: item[0])], dtype=dtype)
            continue
        grid = np.empty((max(r for r, _, _ in items) + 1, max(c for _, c, _ in items) + 1), dtype=object)
        for r, c, v in items:
            grid[r, c] = v
        out[key] = grid.astype(dtype)
    return out
