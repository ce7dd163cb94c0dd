"""Dataset mode (model/dataset.py, dataset_rows.py): rows equal the one-image functions, labels from class
folders and Parquet, error rows, resume, and the reader without torch."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image


from model.cli import main
from model.dataset import DatasetOptions, read_dataset, run_dataset
from model.explain import explanation_maps
from model.head_stats import artifact_tokens, attention_entropy, mean_attention_distance, prefix_attention
from model.native import save_native
from small_models import small_classifier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = small_classifier()
    return save_native(model, tmp_path_factory.mktemp("m") / "clf")


def png_bytes(rng, h, w) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def class_folders(tmp_path):
    """DIR/cat/*.png, DIR/dog/*.png (two shapes) and one broken file in dog/."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for name, shapes in (("dog", [(30, 40), (40, 40), (30, 40)]), ("cat", [(40, 40), (40, 30)])):
        (root / name).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            (root / name / f"{name}{i}.png").write_bytes(png_bytes(rng, h, w))
    (root / "dog" / "dog9.png").write_bytes(b"truncated nonsense")
    (root / "notes.txt").write_text("not an image: skipped")
    return root


def reference_row(model, path: Path, method="rollout", grad_class=None):
    trace = model.trace([Image.open(path)], grad_class=grad_class).numpy()
    a, p = trace.attentions[0], trace.num_prefix_tokens
    grads = trace.attention_grads[0] if trace.attention_grads is not None else None
    return {
        "logits": trace.logits[0],
        "mean_attention_distance": mean_attention_distance(a, trace.grid, trace.patch_size, p),
        "attention_entropy": attention_entropy(a),
        "prefix_attention": prefix_attention(a, p),
        "artifact_tokens": artifact_tokens(trace.hidden_states[0], p, grid=trace.grid).patch_indices,
        "map": explanation_maps(a, grads, num_prefix_tokens=p, grid=trace.grid, methods=(method,))[method],
        "queries": trace.queries[0, 1, 2], "keys": trace.keys[0, 1, 2], "grid": trace.grid,
    }


def stacked(cell) -> np.ndarray:
    return np.stack([np.asarray(r, np.float64) for r in cell]) if len(cell) and hasattr(cell[0], "__len__") \
        else np.asarray(cell, np.float64)


def test_rows_equal_the_one_image_functions(model_dir, class_folders, tmp_path):
    from model import load_model

    out = tmp_path / "out"
    options = DatasetOptions(method="chefer", explain_label="true", qk=(1, 2), batch_size=2)
    summary = run_dataset(class_folders, str(model_dir), out, options, device="cpu", shard_size=4)
    assert (summary.rows, summary.shards, summary.errors) == (6, 2, 1)
    df, meta = read_dataset(out)
    assert meta == {"format": 1, "model": str(model_dir), "method": "chefer", "patch_size": 6, "num_prefix_tokens": 2,
                    "prefix_names": ["CLS", "REG0"], "layers": 2, "heads": 3, "class_names": ["cat", "dog", "fox"],
                    "qk_layer": 1, "qk_head": 2}
    names = [Path(p).relative_to(class_folders).as_posix() for p in df["image"]]
    assert names == ["cat/cat0.png", "cat/cat1.png", "dog/dog0.png", "dog/dog1.png", "dog/dog2.png", "dog/dog9.png"]
    assert df["label"].tolist()[:5] == [0, 0, 1, 1, 1]
    bad = df.iloc[5]
    assert "is not an image Patchlight can read" in bad["error"]
    (bad_row,) = pq.read_table(out / "part-00001.parquet").slice(1).to_pylist()  # rows 4, 5 are shard 1
    assert bad_row["error"] == bad["error"] and [k for k, v in bad_row.items() if v is not None] == ["image", "error"]
    model = load_model(str(model_dir), device="cpu")
    for i in range(5):
        row = df.iloc[i]
        ref = reference_row(model, Path(row["image"]), "chefer", grad_class=int(row["label"]))
        assert pd.isna(row["error"]) and (row["height"], row["width"]) == Image.open(row["image"]).size[::-1]
        assert list(row["grid"]) == list(ref["grid"])
        np.testing.assert_allclose(row["logits"], ref["logits"], rtol=1e-5, atol=1e-5)
        assert row["prediction"] == int(np.argmax(ref["logits"])) and row["prediction_name"] == meta["class_names"][row["prediction"]]
        probs = np.exp(ref["logits"] - ref["logits"].max())
        assert abs(row["probability"] - probs.max() / probs.sum()) < 1e-5
        for key in ("mean_attention_distance", "attention_entropy", "prefix_attention", "map", "queries", "keys"):
            np.testing.assert_allclose(stacked(row[key]), ref[key], rtol=1e-4, atol=1e-5, err_msg=key)
        assert list(row["artifact_tokens"]) == ref["artifact_tokens"].tolist()
    schema = pq.read_schema(out / "part-00000.parquet")
    assert schema.field("mean_attention_distance").type == pa.list_(pa.list_(pa.float32()))
    assert schema.field("label").type == pa.int32() and schema.field("artifact_tokens").type == pa.list_(pa.int32())
    assert len(pd.read_parquet(out)) == 6  # pandas reads OUT directly (the run file is skipped)


def test_parquet_input_with_struct_bytes_and_row_names(model_dir, tmp_path):
    rng = np.random.default_rng(2)
    blobs = [png_bytes(rng, 24, 24), None, png_bytes(rng, 30, 40)]
    image = pa.array([{"bytes": b, "path": None} for b in blobs],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": image, "label": pa.array([2, 0, None], pa.int64())}), tmp_path / "in.parquet")
    run_dataset(tmp_path / "in.parquet", str(model_dir), tmp_path / "out", device="cpu")
    df, meta = read_dataset(tmp_path / "out")
    assert df["image"].tolist() == ["row:0", "row:1", "row:2"] and meta["method"] == "rollout"
    assert pd.isna(df["error"][0]) and "no image bytes" in df["error"][1]
    assert df["label"][0] == 2 and pd.isna(df["label"][2]) and df["queries" if "queries" in df else "map"] is not None
    assert "queries" not in df.columns


def test_resume_skips_finished_shards_and_redoes_a_partial_one(model_dir, class_folders, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_dataset(class_folders, str(model_dir), out, device="cpu", shard_size=2)
    first = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    assert sorted(first) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    (out / "part-00001.parquet").write_bytes(first["part-00001.parquet"][:100])  # a shard cut short
    (out / "part-00002.parquet").unlink()  # never written
    (out / ".part-00002.parquet.tmp").write_bytes(b"half a write")  # left by an interrupted write
    import model.dataset_rows as rows

    calls = []
    real = rows.dataset_rows
    monkeypatch.setattr(rows, "dataset_rows", lambda m, records, *a, **k: calls.append(len(records)) or real(m, records, *a, **k))
    summary = run_dataset(class_folders, str(model_dir), out, device="cpu", shard_size=2)
    assert calls == [2, 2] and summary.shards_done_before == 1
    assert not list(out.glob(".part-*"))
    assert (out / "part-00000.parquet").read_bytes() == first["part-00000.parquet"]  # untouched
    assert len(read_dataset(out)[0]) == 6
    calls.clear()
    run_dataset(class_folders, str(model_dir), out, device="cpu", shard_size=2)
    assert calls == []  # everything done: nothing recomputed
    with pytest.raises(ValueError, match="holds a dataset run with other settings"):
        run_dataset(class_folders, str(model_dir), out, DatasetOptions(method="attention"), device="cpu", shard_size=2)


@pytest.mark.parametrize("argv, message", [
    (["dataset", "NOWHERE", "--out", "OUT"], "no such file or directory"),
    (["dataset", "EMPTY", "--out", "OUT"], "holds no images"),
    (["dataset", "DATA", "--out", "OUT", "--method", "magic"], "method 'magic' is unknown"),
    (["dataset", "DATA", "--out", "OUT", "--qk", "5,0"], "--qk 5,0 is out of range"),
    (["dataset", "DATA", "--out", "OUT", "--qk", "one"], "expected LAYER,HEAD"),
    (["dataset", "DATA", "--out", "NOTEMPTY"], "is not empty and holds no dataset run"),
    (["dataset", "NOIMAGECOL", "--out", "OUT"], "has no `image` column"),
    (["dataset", "DATA", "--out", "OUT", "--shard-size", "0"], "--shard-size must be at least 1"),
])
def test_cli_messages_for_bad_input(model_dir, class_folders, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notempty").mkdir()
    (tmp_path / "notempty" / "x.txt").write_text("x")
    pq.write_table(pa.table({"pixels": [b"x"]}), tmp_path / "noimage.parquet")
    subs = {"NOWHERE": str(tmp_path / "nowhere"), "EMPTY": str(tmp_path / "empty"), "DATA": str(class_folders),
            "OUT": str(tmp_path / "out"), "NOTEMPTY": str(tmp_path / "notempty"),
            "NOIMAGECOL": str(tmp_path / "noimage.parquet")}
    argv = [subs.get(a, a) for a in argv]
    assert main([*argv, "--model", str(model_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_dataset_prints_a_summary(model_dir, class_folders, tmp_path, capsys):
    assert main(["dataset", str(class_folders), "--model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--device", "cpu"]) == 0
    assert "6 image(s) in 1 shard(s), 1 error row(s)" in capsys.readouterr().out
    run = json.loads((tmp_path / "o" / "_patchlight_run.json").read_text())
    assert run["input"]["label_names"] == ["cat", "dog"]


def test_read_dataset_needs_no_torch(model_dir, class_folders, tmp_path):
    run_dataset(class_folders, str(model_dir), tmp_path / "o", device="cpu")
    code = ("import sys\nfrom model.dataset import read_dataset\n"
            f"df, meta = read_dataset({str(tmp_path / 'o')!r})\n"
            "print(len(df), meta['layers'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["6", "2", "False"], out.stderr


# ---- the Ray engine ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    """A local single-node Ray cluster with two CPUs and no dashboard; its workers import this checkout's `model`."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (requirements-dev.txt installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_output_equals_local_output(local_ray, model_dir, class_folders, tmp_path):
    """Equal up to float32 rounding: Ray's batches may be cut differently, and a batched matmul's sums
    can then round in another order (seen: probabilities 1 ulp apart)."""
    options = DatasetOptions(method="chefer", qk=(0, 1), batch_size=2)
    local = run_dataset(class_folders, str(model_dir), tmp_path / "local", options, device="cpu", shard_size=4)
    remote = run_dataset(class_folders, str(model_dir), tmp_path / "ray", options, engine="ray", device="cpu",
                         shard_size=4)
    assert (remote.rows, remote.shards, remote.errors) == (local.rows, local.shards, local.errors) == (6, 2, 1)
    a, meta_a = read_dataset(tmp_path / "local")
    b, meta_b = read_dataset(tmp_path / "ray")
    assert meta_a == meta_b and list(a.columns) == list(b.columns)
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]
    for column in a.columns:
        for x, y in zip(a[column], b[column]):
            if isinstance(x, np.ndarray):
                xs, ys = (np.stack(list(v)) if v.dtype == object else v for v in (x, y))
                np.testing.assert_allclose(ys, xs, rtol=1e-5, atol=1e-6, err_msg=column)
            else:
                assert (pd.isna(x) and pd.isna(y)) or x == y or (isinstance(x, float) and np.isclose(y, x, rtol=1e-5)), \
                    (column, x, y)


@pytest.mark.parametrize("explain_label", ["top", "true"])
def test_a_model_method_map_equals_explain(model_dir, class_folders, tmp_path, explain_label):
    """Methods that re-run the model (model.explain.MODEL_METHODS) give explain's map for the class asked."""
    from model import load_model
    from model.explain import explain

    out = tmp_path / "out"
    run_dataset(class_folders, str(model_dir), out, DatasetOptions(method="legrad", explain_label=explain_label,
                                                                   batch_size=2), device="cpu", shard_size=8)
    df, meta = read_dataset(out)
    model = load_model(str(model_dir), device="cpu")
    for i in range(5):
        row = df.iloc[i]
        label = int(row["label"]) if explain_label == "true" else None
        want = explain(model, Image.open(row["image"]), "legrad", label=label)
        np.testing.assert_allclose(stacked(row["map"]), want.map, rtol=1e-4, atol=1e-5)
