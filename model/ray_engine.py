"""Dataset mode on Ray Data (`python -m model dataset … --engine ray`).

The records of the shards still to do become one Ray dataset; `map_batches` runs the same
per-batch function as the local engine (`dataset_rows`) in a pool of actors, each of which
loads the model once — on a GPU when the cluster has them (one GPU per actor, a Ray resource),
else with its share of the CPUs as torch threads. The driver gathers the rows of each shard and
hands complete shards back to `model.dataset`, which writes them as the local engine does.

Ray is imported only here, and only when this engine is asked for. `address`: None starts a
local cluster (or uses one this process already started, or $RAY_ADDRESS); "auto" or
"HOST:PORT" connects to a running cluster. A cluster's nodes need Patchlight installed (or this
checkout on a shared path: it is put on the workers' PYTHONPATH) and read folder inputs by path,
so a folder input must be on a file system every node sees; Parquet inputs travel as bytes.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding the `model` package
SHARD_COLUMN, ORDER_COLUMN = "_shard", "_order"


class RowsWorker:
    """A Ray actor: loads the model once, then turns batches of records into rows (`dataset_rows`)."""

    def __init__(self, model_source: str, device: str, options: dict, threads: int | None = None):
        import torch

        from .dataset import DatasetOptions
        from .loading import load_model

        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(model_source, device=device)
        self.options = DatasetOptions(**options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from .dataset_rows import dataset_rows

        rows = dataset_rows(self.model, batch.select(["image", "label", "path", "data"]).to_pylist(), self.options)
        return rows.append_column(SHARD_COLUMN, batch.column(SHARD_COLUMN)).append_column(
            ORDER_COLUMN, batch.column(ORDER_COLUMN))


def connect(address: str | None):
    """`ray`, initialised: this process's cluster, the one at `address`, or a new local one."""
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'ray[data]' (or leave --engine at local)") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"PYTHONPATH": ROOT}})
    return ray


def ray_tables(shards: Iterable[tuple[int, list[dict]]], expected: list[int], model_source: str, device: str,
               options, address: str | None = None, workers: int | None = None,
               progress=None) -> Iterator[tuple[int, pa.Table]]:
    """(shard index, its rows) for every shard in `shards`, each as soon as all its rows are back."""
    ray = connect(address)
    items = [{**record, SHARD_COLUMN: k, ORDER_COLUMN: i}
             for k, records in shards for i, record in enumerate(records)]
    if not items:
        return
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if device in ("auto", "cuda") or device.startswith("cuda") else 0
    if gpus:  # one actor per GPU; each gets its GPU as a Ray resource
        workers = workers or gpus
        compute = {"num_gpus": 1}
        device = "cuda"
    else:  # CPU: the actors share the cluster's CPUs, each running torch on its share
        cpus = max(1, int(resources.get("CPU", 1)))
        workers = workers or 1
        compute = {"num_cpus": max(1, cpus // workers)}
        device = "cpu"
    threads = compute.get("num_cpus")
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the dataset command shows its own
    ds = ray.data.from_items(items).map_batches(
        RowsWorker, batch_size=options.batch_size or 64, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"model_source": model_source, "device": device, "options": options.to_dict(),
                               "threads": threads},
        **compute,
    )
    pending: dict[int, list[pa.Table]] = {}
    counts: dict[int, int] = {}
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for k in set(batch.column(SHARD_COLUMN).to_pylist()):
            part = batch.filter(pc.equal(batch.column(SHARD_COLUMN), k))
            pending.setdefault(k, []).append(part)
            counts[k] = counts.get(k, 0) + part.num_rows
            if progress is not None:
                progress.update(part.num_rows)
            if counts[k] == expected[k]:
                table = pa.concat_tables(pending.pop(k)).sort_by(ORDER_COLUMN)
                yield k, table.drop_columns([SHARD_COLUMN, ORDER_COLUMN])
