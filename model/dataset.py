"""Dataset mode: per-image predictions, head statistics and an explanation map for a whole data set,
written as Parquet shards (`python -m model dataset DIR_OR_PARQUET --model M --out OUT`).

OUT is a folder of shards `part-00000.parquet`, … of `SHARD_SIZE` input rows each, one row per
image (columns: `dataset_rows.schema`), which `pandas.read_parquet(OUT)` and `pyarrow.dataset`
read directly; `read_dataset` gives (DataFrame, meta). A shard is written to a hidden temporary
file and renamed when complete, so a run that is stopped leaves only whole shards behind and the
next run with the same settings redoes only the missing ones. `OUT/_patchlight_run.json` records
the settings; a run with other settings into the same OUT is refused. Files whose names start
with "_" or "." are skipped by pyarrow's dataset reader.

Inputs: a folder of images (DIR/img.png, label null), a folder of class folders
(DIR/class_name/img.png, label = index in the sorted folder names), or a Parquet file with an
image-bytes column `image` (bytes, or a struct with `bytes` as Hugging Face datasets write) and
optional `path` and `label` columns.

This module imports neither torch nor Ray at import time (the app reads results with it); the
rows come from `model.dataset_rows`, the Ray engine from `model.ray_engine`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = 1
META_KEY = b"patchlight"
RUN_FILE = "_patchlight_run.json"
SHARD_SIZE = 1000


@dataclass(frozen=True)
class DatasetOptions:
    """What each row holds besides the prediction and the head statistics.

    method: the explanation map's id (`model.explain.METHODS`); explain_label: "top" (class methods
    explain the top class) or "true" (the given label where there is one); qk: (layer, head) whose
    q and k of every token are stored, or None; batch_size: images per forward pass (None: as many
    as fit in ~1 GB of trace).
    """

    method: str = "rollout"
    explain_label: str = "top"
    qk: tuple[int, int] | None = None
    batch_size: int | None = None

    def __post_init__(self):
        if self.explain_label not in ("top", "true"):
            raise ValueError(f"explain label {self.explain_label!r}: expected 'top' or 'true'")
        if self.qk is not None:
            object.__setattr__(self, "qk", tuple(int(v) for v in self.qk))

    def to_dict(self) -> dict:
        return asdict(self)


Record = dict  # {"image": name, "label": int | None, "path": str | None, "data": bytes | None}


@dataclass
class DatasetInput:
    """The images of a folder or a Parquet file, read shard by shard."""

    kind: str  # "folder" or "parquet"
    path: Path
    total: int
    files: list[tuple[str, int | None]] = field(default_factory=list)  # folder: (path, label)
    label_names: list[str] | None = None  # folder of class folders: the sorted folder names

    def describe(self) -> dict:
        """What identifies the input in the run file (resuming needs the same input)."""
        d = {"kind": self.kind, "path": str(self.path.resolve()), "rows": self.total, "label_names": self.label_names}
        if self.kind == "folder":
            d["files_sha256"] = hashlib.sha256("\n".join(f for f, _ in self.files).encode()).hexdigest()
        else:
            d["bytes"] = self.path.stat().st_size
        return d

    def shards(self, shard_size: int, skip=frozenset()) -> Iterator[tuple[int, list[Record]]]:
        """(shard index, its records) in order; shards in `skip` are not read."""
        if self.kind == "folder":
            for k in range(math.ceil(self.total / shard_size)):
                if k not in skip:
                    part = self.files[k * shard_size : (k + 1) * shard_size]
                    yield k, [{"image": f, "label": lab, "path": f, "data": None} for f, lab in part]
            return
        yield from _parquet_shards(self.path, shard_size, skip)


def open_input(source: str | os.PathLike) -> DatasetInput:
    """A folder of images, a folder of class folders, or a Parquet file; a clear error otherwise."""
    from .preprocess import IMAGE_SUFFIXES  # late: preprocess imports torch

    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".parquet":
        names = pq.read_schema(path).names
        if "image" not in names:
            raise ValueError(f"{path} has no `image` column (columns: {', '.join(names)}); dataset mode reads "
                             "image bytes from a column named image")
        return DatasetInput("parquet", path, pq.read_metadata(path).num_rows)
    if not path.is_dir():
        what = "no such file or directory" if not path.exists() else "not a folder of images or a .parquet file"
        raise ValueError(f"{source}: {what}; give a folder of images (or of class folders) or a Parquet file")

    def images_in(folder: Path) -> list[str]:
        return sorted(str(q) for q in folder.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)

    files: list[tuple[str, int | None]] = [(f, None) for f in images_in(path)]
    classes = sorted(q.name for q in path.iterdir() if q.is_dir() and not q.name.startswith("."))
    classes = [c for c in classes if images_in(path / c)]
    for index, name in enumerate(classes):
        files += [(f, index) for f in images_in(path / name)]
    if not files:
        raise ValueError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), neither directly nor in "
                         "class folders")
    return DatasetInput("folder", path, len(files), files, classes or None)


def _parquet_shards(path: Path, shard_size: int, skip) -> Iterator[tuple[int, list[Record]]]:
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    columns = [c for c in ("image", "path", "label") if c in names]
    buffer: list[Record] = []
    k, row = 0, 0

    def records(batch: pa.RecordBatch, start: int) -> list[Record]:
        image = batch.column("image")
        if pa.types.is_struct(image.type):
            image = image.field("bytes")
        data = image.to_pylist()
        paths = batch.column("path").to_pylist() if "path" in columns else [None] * len(data)
        labels = batch.column("label").to_pylist() if "label" in columns else [None] * len(data)
        return [{"image": p if p is not None else f"row:{start + i}", "label": lab, "path": None, "data": d}
                for i, (d, p, lab) in enumerate(zip(data, paths, labels))]

    for batch in pf.iter_batches(batch_size=shard_size, columns=columns):
        n = batch.num_rows
        first_k, last_k = row // shard_size, (row + n - 1) // shard_size
        if all(j in skip for j in range(first_k, last_k + 1)):
            buffer += [None] * n  # finished shards: nothing decoded, only counted
        else:
            buffer += records(batch, row)
        row += n
        while len(buffer) >= shard_size or (buffer and row == pf.metadata.num_rows):
            part, buffer = buffer[:shard_size], buffer[shard_size:]
            if k not in skip:
                yield k, part
            k += 1


# ---- shards on disk ----------------------------------------------------------------------------
def shard_path(out: Path, k: int) -> Path:
    return out / f"part-{k:05d}.parquet"


def shard_is_complete(out: Path, k: int, rows: int, meta: dict) -> bool:
    """A shard counts as done when it reads as Parquet, has all its rows and was made with these settings."""
    path = shard_path(out, k)
    if not path.is_file():
        return False
    try:
        info = pq.read_metadata(path)
        stored = json.loads((info.schema.to_arrow_schema().metadata or {}).get(META_KEY, b"null"))
    except (OSError, ValueError, pa.ArrowException):
        return False
    return info.num_rows == rows and stored == meta


def write_shard(out: Path, k: int, table: pa.Table, meta: dict) -> Path:
    """Write atomically: a hidden temporary file, renamed once complete."""
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    tmp = out / f".part-{k:05d}.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, shard_path(out, k))
    return shard_path(out, k)


def prepare_out(out: Path, run: dict) -> None:
    """Create OUT, or check that it holds a run with the same settings (then it is resumed)."""
    run_file = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the Parquet shards")
    if run_file.is_file():
        previous = json.loads(run_file.read_text())
        if previous != run:
            changed = next((key for key in run if previous.get(key) != run.get(key)), "format")
            raise ValueError(f"{out} holds a dataset run with other settings ({changed} differs); give another "
                             f"--out, or delete {out} to start again")
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no dataset run; give a new or empty folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".part-*.parquet.tmp"):  # a shard whose write was interrupted
        stale.unlink()
    run_file.write_text(json.dumps(run, indent=2))


# ---- the run -----------------------------------------------------------------------------------
@dataclass
class RunSummary:
    out: Path
    shards: int
    shards_done_before: int
    rows: int
    errors: int


def run_dataset(source, model_source: str, out, options: DatasetOptions = DatasetOptions(), *,
                engine: str = "local", device: str = "auto", shard_size: int = SHARD_SIZE,
                ray_address: str | None = None, workers: int | None = None, progress: bool | None = None) -> RunSummary:
    """Process every image of `source` into Parquet shards under `out`, resuming finished shards."""
    from .batching import Progress
    from .dataset_rows import check_options, dataset_meta, dataset_rows
    from .loading import load_model

    if engine not in ("local", "ray"):
        raise ValueError(f"engine {engine!r}: expected local or ray")
    if shard_size < 1:
        raise ValueError(f"shard size {shard_size} must be at least 1")
    inp = open_input(source)
    model = load_model(model_source, device="cpu" if engine == "ray" else device)
    check_options(model, options)
    meta = dataset_meta(model, model_source, options)
    out = Path(out)
    prepare_out(out, {"format": FORMAT, "input": inp.describe(), "shard_size": shard_size, "meta": meta,
                      "options": options.to_dict()})
    n_shards = math.ceil(inp.total / shard_size)
    expected = [min(shard_size, inp.total - k * shard_size) for k in range(n_shards)]
    done = {k for k in range(n_shards) if shard_is_complete(out, k, expected[k], meta)}
    errors = 0
    with Progress(inp.total, shard_size, enabled=progress) as bar:
        bar.update(sum(expected[k] for k in done))
        if engine == "ray":
            from .ray_engine import ray_tables

            tables = ray_tables(inp.shards(shard_size, skip=done), expected, model_source, device, options,
                                address=ray_address, workers=workers, progress=bar)
        else:
            tables = ((k, dataset_rows(model, records, options, progress=bar))
                      for k, records in inp.shards(shard_size, skip=done))
        for k, table in tables:
            write_shard(out, k, table, meta)
            errors += table.num_rows - table.column("error").null_count
    return RunSummary(out, n_shards, len(done), inp.total, int(errors))


# ---- reading -----------------------------------------------------------------------------------
def read_dataset(path: str | os.PathLike):
    """(pandas.DataFrame with one row per image, in input order; the run's meta dict) of an OUT folder
    (or one shard file). Importable without torch. Integer columns are pandas' nullable Int32 (null:
    pd.NA); list columns hold numpy arrays (a [L][H] column: an array of L arrays of H floats)."""
    path = Path(path)
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        raise ValueError(f"{path} holds no Patchlight dataset shards (part-*.parquet); run "
                         "`python -m model dataset … --out` first")
    tables = [pq.read_table(f) for f in files]
    raw = tables[0].schema.metadata or {}
    if META_KEY not in raw:
        raise ValueError(f"{files[0]} was not written by Patchlight's dataset mode (no `patchlight` metadata)")
    meta = json.loads(raw[META_KEY])
    import pandas as pd

    table = pa.concat_tables(tables, promote_options="default")
    # int32 columns with nulls (label, prediction, height, width) stay integers: pandas' nullable Int32
    return table.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get), meta
