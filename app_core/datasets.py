"""Data-set results: read the Parquet that ``python -m model dataset`` writes (issue 14), check it,
and hold it as numpy arrays for the Data set page. Streamlit-free and torch-free.

The file (or a directory of shards ``part-00000.parquet`` …) has one row per image and the schema
metadata key ``patchlight`` = JSON {"format": 1, "model", "method", "patch_size",
"num_prefix_tokens", "prefix_names", "layers", "heads", "class_names", "qk_layer", "qk_head"}.
Columns: ``image``, ``error`` (null when processed), ``height``, ``width``, ``label``,
``prediction``, ``prediction_name``, ``probability``, ``logits``, ``grid`` [h, w],
``mean_attention_distance`` / ``attention_entropy`` / ``prefix_attention`` [L][H],
``artifact_tokens`` (patch indices), ``map`` [h][w], and optionally ``queries`` / ``keys`` [T][d]
(one head's q and k for every token).

Every problem is one :class:`DataSetError` (a ValueError) that says what is wrong and what to do.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .uploads import MAX_UPLOAD_MB

FORMAT = 1
META_KEY = b"patchlight"
MAKE_ONE = "make one with `python -m model dataset IMAGES_DIR --model MODEL --out OUT`"
REQUIRED_COLUMNS = ("image", "error", "height", "width", "label", "prediction", "prediction_name",
                    "probability", "grid", "mean_attention_distance", "attention_entropy", "prefix_attention",
                    "artifact_tokens")
READ_COLUMNS = ("image", "error", "label", "prediction", "probability", "grid", "mean_attention_distance",
                "attention_entropy", "prefix_attention", "artifact_tokens")
QK_COLUMNS = ("queries", "keys")
REQUIRED_META = ("format", "model", "patch_size", "num_prefix_tokens", "layers", "heads")
# What a file may expand to when read (from its footer, before anything is decompressed): a small
# upload of well-compressed zeros must not take the server's memory (cf. the decode budget of images).
MAX_UNCOMPRESSED_MB = 512


class DataSetError(ValueError):
    """A data-set file that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class DataSet:
    """One data-set result. ``rows`` counts every image; the arrays hold the M processed ones.

    images, errors   [rows] the path (or ``row:<i>``) and the error (None when processed)
    ok               [M] row index of each processed image
    labels, predictions [M] int, -1 when unknown / the model has no head
    probability      [M] float, NaN without a head
    grids            [M, 2] the patch grid (h, w) of each image
    distance, entropy, prefix [M, L, H] per-head statistics (float32)
    artifacts        M arrays of flagged patch indices
    queries, keys    M arrays [T, d] of head (qk_layer, qk_head), or None when not stored
    """

    meta: dict
    digest: str
    images: tuple[str, ...]
    errors: tuple[str | None, ...]
    ok: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probability: np.ndarray
    grids: np.ndarray
    distance: np.ndarray
    entropy: np.ndarray
    prefix: np.ndarray
    artifacts: tuple[np.ndarray, ...]
    queries: tuple[np.ndarray, ...] | None
    keys: tuple[np.ndarray, ...] | None

    @property
    def rows(self) -> int:
        return len(self.images)

    @property
    def M(self) -> int:
        return len(self.ok)

    @property
    def L(self) -> int:
        return int(self.meta["layers"])

    @property
    def H(self) -> int:
        return int(self.meta["heads"])

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.meta["num_prefix_tokens"])

    @property
    def prefix_names(self) -> list[str]:
        names = self.meta.get("prefix_names") or []
        p = self.num_prefix_tokens
        return [str(n) for n in names][:p] if len(names) >= p else ["CLS"] + [f"TOK{i}" for i in range(1, p)]

    @property
    def class_names(self) -> list[str] | None:
        names = self.meta.get("class_names")
        return [str(n) for n in names] if names else None

    @property
    def has_qk(self) -> bool:
        return self.queries is not None and self.M > 0

    def image_name(self, i: int) -> str:
        """The file name of processed image i (its path's last part)."""
        return Path(self.images[int(self.ok[i])]).name or self.images[int(self.ok[i])]


# ----------------------------------------------------------------------------- reading


def check_upload(data: bytes, name: str, limit_mb: float = MAX_UPLOAD_MB) -> None:
    """An uploaded data-set file: not empty, within the upload limit, a .parquet file."""
    if not name.lower().endswith(".parquet"):
        raise DataSetError(f"{name} is not a .parquet file; upload the part-00000.parquet (or a single .parquet "
                           f"file) that `python -m model dataset` wrote")
    if not data:
        raise DataSetError(f"{name} is empty (0 bytes); {MAKE_ONE}")
    if len(data) > limit_mb * 1024 * 1024:
        raise DataSetError(f"{name} is {len(data) / 1024 / 1024:.1f} MB, over the {limit_mb:g} MB upload limit; "
                           "write smaller shards (fewer images per file) or leave out --qk, or open it by path "
                           "when Patchlight runs on your own machine")


def shard_paths(path: str | Path) -> list[Path]:
    """The Parquet files of a result: the file itself, or a directory's ``*.parquet`` in name order."""
    p = Path(path).expanduser()
    if p.is_dir():
        shards = sorted(f for f in p.iterdir() if f.suffix == ".parquet" and f.is_file())
        if not shards:
            raise DataSetError(f"{p} holds no .parquet files; {MAKE_ONE}")
        return shards
    if p.is_file():
        if p.suffix != ".parquet":
            raise DataSetError(f"{p} is not a .parquet file or a directory of them; {MAKE_ONE}")
        return [p]
    raise DataSetError(f"{p} does not exist; give the OUT directory (or a .parquet file) of `python -m model "
                       "dataset`")


def path_key(path: str | Path) -> str:
    """The cache key of a result on disk: its resolved path with every shard's size and time
    (cheap to take on every run; a rewritten result is read again, not served stale)."""
    stamps = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in shard_paths(path)]
    return hashlib.sha256(f"{Path(path).expanduser().resolve()}|{stamps}".encode()).hexdigest()


def read_dataset(source: bytes | str | Path, name: str | None = None,
                 max_uncompressed_mb: float = MAX_UNCOMPRESSED_MB) -> DataSet:
    """A data set from an upload's bytes (one .parquet file) or a path (a file or a shard directory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "the file"
        files = [(label, pa.BufferReader(bytes(source)))]
        digest = hashlib.sha256(source).hexdigest()
    else:
        files = [(str(p), p) for p in shard_paths(source)]
        digest = path_key(source)
    tables, metas = [], []
    budget = max_uncompressed_mb * 1024 * 1024
    for label, handle in files:
        try:
            pf = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DataSetError(f"{label} is not a readable Parquet file ({str(err).splitlines()[0][:200]}); "
                               f"{MAKE_ONE}") from None
        metas.append(_meta(pf.schema_arrow.metadata, label))
        missing = [c for c in REQUIRED_COLUMNS if c not in pf.schema_arrow.names]
        if missing:
            raise DataSetError(f"{label} lacks the column(s) {', '.join(missing)}, so it is not a complete "
                               f"Patchlight data-set result; {MAKE_ONE}")
        # Only what the page shows is read (not the maps and logits), and its size is known from the
        # footer before anything is decompressed.
        wanted = list(READ_COLUMNS) + [c for c in QK_COLUMNS if c in pf.schema_arrow.names]
        md = pf.metadata
        budget -= sum(rg.column(j).total_uncompressed_size for rg in map(md.row_group, range(md.num_row_groups))
                      for j in range(rg.num_columns) if rg.column(j).path_in_schema.split(".")[0] in wanted)
        if budget < 0:
            raise DataSetError(f"{label} expands to more than {max_uncompressed_mb:g} MB when read; write fewer "
                               "images per data set (or leave out the stored queries and keys)")
        try:
            tables.append(pf.read(columns=wanted))
        except (pa.ArrowException, OSError, ValueError) as err:
            raise DataSetError(f"{label} is truncated or corrupt ({str(err).splitlines()[0][:200]}); write it "
                               "again") from None
    meta = metas[0]
    for label_meta, (label, _) in zip(metas[1:], files[1:]):
        if label_meta != meta:
            raise DataSetError(f"{label} was written for another model or settings than {files[0][0]}; keep one "
                               "data-set result per directory")
    where = [label for (label, _), t in zip(files, tables) for _ in range(t.num_rows)]
    try:
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    except pa.ArrowException as err:
        raise DataSetError(f"the shards in {Path(files[0][0]).parent} have different columns or types ({str(err).splitlines()[0][:200]})"
                           "; keep one data-set result per directory") from None
    return _build(meta, table, where, digest)


def _meta(raw: dict | None, label: str) -> dict:
    text = (raw or {}).get(META_KEY)
    if text is None:
        raise DataSetError(f"{label} has no Patchlight metadata, so it is not a data-set result of Patchlight; "
                           f"{MAKE_ONE}")
    try:
        meta = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataSetError(f"{label}: its Patchlight metadata is not valid JSON; write the file again") from None
    if not isinstance(meta, dict):
        raise DataSetError(f"{label}: its Patchlight metadata is not a JSON object; write the file again")
    if meta.get("format") != FORMAT:
        raise DataSetError(f"{label} is in data-set format {meta.get('format')!r}, but this Patchlight reads format "
                           f"{FORMAT}; write it again with this version of `python -m model dataset`")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise DataSetError(f"{label}: its Patchlight metadata lacks {', '.join(missing)}; write the file again")
    for key in ("patch_size", "num_prefix_tokens", "layers", "heads"):
        if isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < (0 if key ==
                                                                                          "num_prefix_tokens" else 1):
            raise DataSetError(f"{label}: metadata {key}={meta[key]!r} is not a positive whole number; write the "
                               "file again")
    if meta.get("qk_head") is not None:  # null: no queries and keys stored (qk_layer then says nothing)
        for key, top in (("qk_layer", meta["layers"]), ("qk_head", meta["heads"])):
            value = meta.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < top:
                raise DataSetError(f"{label}: metadata {key}={value!r} is not a {key[3:]} of the model (0…{top - 1}); "
                                   "write the file again")
    return meta


def _lists(column, depth: int) -> tuple[list[np.ndarray], np.ndarray]:
    """A column of nested lists ([M][a] or [M][a][b]) without a Python object per number: the
    length of each row at every level (-1 for a null) and the values, flat, as float32."""
    import pyarrow.compute as pc

    arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    lengths = []
    for _ in range(depth):
        lengths.append(pc.list_value_length(arr).fill_null(-1).to_numpy(zero_copy_only=False))
        arr = pc.list_flatten(arr)
    return lengths, arr.fill_null(np.nan).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def _first_bad(bad: np.ndarray, where: list[str], images: list) -> str:
    i = int(np.flatnonzero(bad)[0])
    return f"{where[i]}, image {images[i]}"


def _heads_column(column, L: int, H: int, name: str, where: list[str], images: list) -> np.ndarray:
    """An [L][H] column of the processed rows as [M, L, H] float32."""
    (outer, inner), values = _lists(column, 2)
    bad = outer != L
    row_of = np.repeat(np.arange(len(outer)), np.maximum(outer, 0))  # the row each inner list belongs to
    bad[row_of[inner != H]] = True
    if bad.any():
        raise DataSetError(f"{_first_bad(bad, where, images)}: {name} is not [{L}][{H}] (layers × heads of the "
                           "metadata); the file is inconsistent — write it again")
    return values.reshape(len(outer), L, H)


def _build(meta: dict, table, where_all: list[str], digest: str) -> DataSet:
    """The DataSet of a table of rows (``where_all[i]``: the file row i came from, for messages)."""
    import pyarrow.compute as pc

    L, H, p = int(meta["layers"]), int(meta["heads"]), int(meta["num_prefix_tokens"])
    images_all = table.column("image").to_pylist()
    errors_all = table.column("error").to_pylist()
    ok = np.asarray([i for i, e in enumerate(errors_all) if e is None], dtype=np.int64)
    done = table.filter(pc.is_null(table.column("error")))
    where, images = [where_all[i] for i in ok], [images_all[i] for i in ok]
    grids = []
    for i, grid in enumerate(done.column("grid").to_pylist()):
        if not grid or len(grid) != 2 or min(grid) < 1:
            raise DataSetError(f"{where[i]}, image {images[i]}: grid is {grid!r}, expected [h, w]; write the file "
                               "again")
        grids.append((int(grid[0]), int(grid[1])))
    grids = np.asarray(grids, dtype=np.int64).reshape(-1, 2)
    stats = {name: _heads_column(done.column(name), L, H, name, where, images) for name in
             ("mean_attention_distance", "attention_entropy", "prefix_attention")}
    arts = []
    for i, flagged in enumerate(done.column("artifact_tokens").to_pylist()):
        flagged = np.asarray(flagged or [], dtype=np.int64)
        n = int(grids[i].prod())
        if flagged.size and (flagged.min() < 0 or flagged.max() >= n):
            raise DataSetError(f"{where[i]}, image {images[i]}: artifact_tokens are patch indices outside "
                               f"0…{n - 1}; write the file again")
        arts.append(flagged)
    with_qk = meta.get("qk_head") is not None and "queries" in table.column_names and "keys" in table.column_names
    queries = keys = None
    if with_qk and len(ok):
        (tq, dq), q_flat = _lists(done.column("queries"), 2)
        (tk, dk), k_flat = _lists(done.column("keys"), 2)
        want = p + grids.prod(axis=1)
        d = int(dq[0]) if len(dq) else 0
        bad = (tq != want) | (tk != want)
        if bad.any() or d < 1 or (dq != d).any() or (dk != d).any():
            row = _first_bad(bad if bad.any() else np.ones(len(ok), bool), where, images)
            raise DataSetError(f"{row}: queries/keys are not [{p} + h·w tokens][d] with one d for all; expected "
                               f"[{int(want[0])}][d] for its grid — write the file again")
        cuts = np.cumsum(tq * d)[:-1]
        queries = tuple(a.reshape(-1, d) for a in np.split(q_flat, cuts))
        keys = tuple(a.reshape(-1, d) for a in np.split(k_flat, cuts))

    def ints(name: str) -> np.ndarray:
        return np.asarray([-1 if v is None else int(v) for v in done.column(name).to_pylist()], dtype=np.int64)

    return DataSet(
        meta=meta, digest=digest, images=tuple(str(x) for x in images_all),
        errors=tuple(None if e is None else str(e) for e in errors_all), ok=ok,
        labels=ints("label"), predictions=ints("prediction"),
        probability=np.asarray([np.nan if v is None else float(v) for v in done.column("probability").to_pylist()]),
        grids=grids, distance=stats["mean_attention_distance"], entropy=stats["attention_entropy"],
        prefix=stats["prefix_attention"], artifacts=tuple(arts),
        queries=queries if with_qk else None, keys=keys if with_qk else None)


# ----------------------------------------------------------------------------- summary


def summary(ds: DataSet) -> dict:
    """N images, how many failed (with their reasons), and the accuracy where labels exist."""
    failed = [(img, err) for img, err in zip(ds.images, ds.errors) if err is not None]
    known = (ds.labels >= 0) & (ds.predictions >= 0)
    return {
        "images": ds.rows,
        "processed": ds.M,
        "failed": failed,
        "labelled": int(known.sum()),
        "accuracy": float((ds.labels[known] == ds.predictions[known]).mean()) if known.any() else None,
    }


def resolve_image(ds: DataSet, i: int, base: str | Path | None = None) -> Path | None:
    """The file on disk of processed image i, as written or relative to ``base`` (the result's
    directory), or None (``row:<i>`` images of a table, or files that are not here)."""
    raw = ds.images[int(ds.ok[i])]
    if raw.startswith("row:"):
        return None
    candidates = [Path(raw).expanduser()]
    if base is not None and not Path(raw).is_absolute():
        candidates.append(Path(base).expanduser() / raw)
    return next((c for c in candidates if c.is_file()), None)


def to_bytes(table) -> bytes:
    """A pyarrow table as Parquet bytes (tests and downloads)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
