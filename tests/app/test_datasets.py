"""app_core.datasets / dataset_views / dataset_figures: the data-set result read back, checked
against malformed files, and its views computed — on real fashion-vit traces of the gallery's
Fashion-MNIST images (tests/app/dataset_fixtures.py writes them with pyarrow from the schema)."""
from __future__ import annotations

import dataset_fixtures as fx
import numpy as np
import pytest

from app_core import dataset_figures, dataset_views, datasets


@pytest.fixture(scope="module")
def real():
    """(rows, meta) of fashion-vit over the ten gallery tiles (q/k of layer 1, head 0) + one failure."""
    return fx.fashion_rows(qk=(1, 0))


@pytest.fixture()
def real_file(real, tmp_path):
    return fx.write(tmp_path / "out" / "part-00000.parquet", *real)


def test_a_real_result_reads_back(real, real_file):
    rows, _ = real
    ds = datasets.read_dataset(real_file)
    ok = [r for r in rows if r["error"] is None]
    assert (ds.rows, ds.M, ds.L, ds.H, ds.num_prefix_tokens) == (11, 10, 4, 4, 1)
    assert ds.prefix_names == ["CLS"] and ds.class_names[9] == "Ankle boot" and ds.has_qk
    for i, r in enumerate(ok):
        np.testing.assert_allclose(ds.distance[i], r["mean_attention_distance"], rtol=1e-6)
        np.testing.assert_allclose(ds.entropy[i], r["attention_entropy"], rtol=1e-6)
        np.testing.assert_allclose(ds.prefix[i], r["prefix_attention"], rtol=1e-6)
        np.testing.assert_array_equal(ds.artifacts[i], r["artifact_tokens"])
        np.testing.assert_allclose(ds.queries[i], r["queries"], rtol=1e-6)
        assert ds.image_name(i) == r["image"].rsplit("/", 1)[-1] and tuple(ds.grids[i]) == (7, 7)
    s = datasets.summary(ds)
    expected = sum(r["prediction"] == r["label"] for r in ok) / len(ok)
    assert s["images"] == 11 and s["processed"] == 10 and s["labelled"] == 10
    assert s["accuracy"] == pytest.approx(expected)
    assert s["failed"] == [("missing/broken.png", "cannot identify image file")]
    # the same bytes uploaded: the same data set, keyed by the bytes' sha256
    again = datasets.read_dataset(real_file.read_bytes(), "part-00000.parquet")
    np.testing.assert_array_equal(again.distance, ds.distance)
    assert len(again.digest) == 64


def test_a_directory_of_shards_is_one_data_set(real, tmp_path):
    rows, meta = real
    fx.write(tmp_path / "out" / "part-00000.parquet", rows[:4], meta)
    fx.write(tmp_path / "out" / "part-00001.parquet", rows[4:], meta)
    ds = datasets.read_dataset(tmp_path / "out")
    assert ds.rows == 11 and ds.M == 10
    assert ds.images == tuple(str(r["image"]) for r in rows)
    fx.write(tmp_path / "out" / "part-00002.parquet", rows[:1], dict(meta, model="dinov2-small"))
    with pytest.raises(datasets.DataSetError, match="another model"):
        datasets.read_dataset(tmp_path / "out")


def _bad(real, tmp_path, case):
    rows, meta = real
    path = tmp_path / "bad.parquet"
    if case == "missing column":
        return fx.write(path, rows, meta, drop=("attention_entropy", "grid")).read_bytes()
    if case == "format 2":
        return fx.write(path, rows, dict(meta, format=2)).read_bytes()
    if case == "no metadata":
        return fx.write(path, rows, None).read_bytes()
    if case == "metadata not JSON":
        import pyarrow.parquet as pq
        table = pq.read_table(fx.write(path, rows, meta))
        pq.write_table(table.replace_schema_metadata({b"patchlight": b"{format: 1"}), path)
        return path.read_bytes()
    if case == "metadata lacks layers":
        return fx.write(path, rows, {k: v for k, v in meta.items() if k != "layers"}).read_bytes()
    if case == "wrong heads shape":
        return fx.write(path, rows, dict(meta, heads=6)).read_bytes()
    if case == "one row short":
        short = [layer[:3] for layer in rows[2]["attention_entropy"]]
        return fx.write(path, rows[:2] + [dict(rows[2], attention_entropy=short)] + rows[3:], meta).read_bytes()
    if case == "artifact out of range":
        return fx.write(path, [dict(rows[0], artifact_tokens=[49])], meta).read_bytes()
    if case == "qk of another grid":
        return fx.write(path, [dict(rows[0], queries=rows[0]["queries"][:10])], meta).read_bytes()
    if case == "qk head out of range":
        return fx.write(path, rows, dict(meta, qk_head=4)).read_bytes()
    if case == "not parquet":
        return b"PAR1 this is not a parquet file at all"
    raise AssertionError(case)


@pytest.mark.parametrize("case, words", [
    ("missing column", "lacks the column(s) grid, attention_entropy"),
    ("format 2", "data-set format 2, but this Patchlight reads format 1"),
    ("no metadata", "no Patchlight metadata"),
    ("metadata not JSON", "not valid JSON"),
    ("metadata lacks layers", "lacks layers"),
    ("wrong heads shape", "is not [4][6]"),
    ("one row short", "fashion-2-pullover.png: attention_entropy is not [4][4]"),
    ("artifact out of range", "outside 0…48"),
    ("qk of another grid", "expected [50][d]"),
    ("qk head out of range", "qk_head=4 is not a head of the model (0…3)"),
    ("not parquet", "not a readable Parquet file"),
])
def test_a_malformed_file_is_one_clear_message(real, tmp_path, case, words):
    data = _bad(real, tmp_path, case)
    with pytest.raises(datasets.DataSetError) as err:
        datasets.read_dataset(data, "bad.parquet")
    message = str(err.value)
    assert words in message, message
    assert "\n" not in message and message.startswith("bad.parquet")


def test_upload_and_path_limits(real_file, tmp_path):
    data = real_file.read_bytes()
    with pytest.raises(datasets.DataSetError, match="not a .parquet file"):
        datasets.check_upload(data, "result.csv")
    with pytest.raises(datasets.DataSetError, match="empty"):
        datasets.check_upload(b"", "result.parquet")
    with pytest.raises(datasets.DataSetError, match="over the 0.01 MB upload limit"):
        datasets.check_upload(data, "result.parquet", limit_mb=0.01)
    # a file that expands past the budget is refused from its footer, before it is decompressed
    with pytest.raises(datasets.DataSetError, match="expands to more than"):
        datasets.read_dataset(data, "result.parquet", max_uncompressed_mb=0.01)
    with pytest.raises(datasets.DataSetError, match="does not exist"):
        datasets.read_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DataSetError, match="holds no .parquet files"):
        datasets.read_dataset(tmp_path / "empty")


def test_path_key_changes_when_a_shard_is_rewritten(real, real_file):
    before = datasets.path_key(real_file.parent)
    fx.write(real_file, real[0][:3], real[1])
    assert datasets.path_key(real_file.parent) != before


def test_resolve_image(real, real_file, tmp_path):
    rows, meta = real
    ds = datasets.read_dataset(real_file)
    assert datasets.resolve_image(ds, 0).is_file()  # the gallery path as written
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"x")
    named = [dict(rows[0], image=name) for name in ("imgs/a.png", "row:3", "imgs/gone.png")]
    rel = datasets.read_dataset(fx.write(tmp_path / "r.parquet", named, meta))
    assert datasets.resolve_image(rel, 0, base=tmp_path) == tmp_path / "imgs" / "a.png"
    assert datasets.resolve_image(rel, 1, base=tmp_path) is None  # a table row, not a file
    assert datasets.resolve_image(rel, 2, base=tmp_path) is None


# ----------------------------------------------------------------------------- views


def test_artifact_frequency_against_a_plain_loop(real_file):
    ds = datasets.read_dataset(real_file)
    share, counts, same = dataset_views.artifact_frequency(ds)
    expected = np.zeros((7, 7))
    for flagged in ds.artifacts:
        for patch in set(flagged.tolist()):
            expected[patch // 7, patch % 7] += 1 / ds.M
    np.testing.assert_allclose(share, expected)
    assert counts.tolist() == [len(set(a.tolist())) for a in ds.artifacts] and same == ds.M


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_qk_normalisation_keeps_every_attention_weight():
    """The stored q and k give the model's own attention, and AttentionViz's shift and scale keep it."""
    from PIL import Image

    from model import load_model
    from model.gallery import list_samples

    model = load_model("fashion-vit", device="cpu")
    tiles = [s.path for s in list_samples() if s.kind == "fashion"][:3]
    traces = [model.trace([Image.open(p).convert("RGB")]).numpy() for p in tiles]
    q = np.concatenate([t.queries[0][1, 0] for t in traces]).astype(np.float64)
    k = np.concatenate([t.keys[0][1, 0] for t in traces]).astype(np.float64)
    qn, kn, c = dataset_views.normalise_qk(q, k)
    T, d = traces[0].T, q.shape[1]
    for i, t in enumerate(traces):
        sl = slice(i * T, (i + 1) * T)
        reference = t.attentions[0][1, 0]
        np.testing.assert_allclose(_softmax(q[sl] @ k[sl].T / np.sqrt(d)), reference, atol=1e-5)
        np.testing.assert_allclose(_softmax(qn[sl] @ kn[sl].T / np.sqrt(d)), reference, atol=1e-5)
    np.testing.assert_allclose(qn.mean(axis=0), kn.mean(axis=0), atol=1e-9)  # one centre
    spread = [np.linalg.norm(x - x.mean(axis=0), axis=1).mean() for x in (qn, kn)]
    assert spread[0] == pytest.approx(spread[1]) and c > 0


def test_pca_2d_against_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) @ np.diag([5.0, 2.0, 1.0, 0.5, 0.1]) + 3.0
    xy, explained = dataset_views.pca_2d(x)
    vals, vecs = np.linalg.eigh(np.cov(x.T, bias=True))
    order = np.argsort(vals)[::-1]
    ref = (x - x.mean(axis=0)) @ vecs[:, order[:2]]
    for j in range(2):
        assert min(np.abs(xy[:, j] - ref[:, j]).max(), np.abs(xy[:, j] + ref[:, j]).max()) < 1e-9
    np.testing.assert_allclose(explained, vals[order[:2]] / vals.sum())


def test_qk_embedding_points_and_clicks(real_file):
    ds = datasets.read_dataset(real_file)
    e = dataset_views.qk_embedding(ds)
    n = ds.M * 50
    assert e.xy.shape == (2 * n, 2) and e.is_key.sum() == n and e.images_shown == ds.M
    assert (e.row[e.token == 0] == -1).all() and e.row.max() == 6 and e.col.max() == 6
    i = n + 3 * 50 + 17  # the key of token 17 of image 3
    point = {"curve_number": 1, "point_index": 5, "customdata": {"0": i, "1": 3, "2": 17, "3": 2, "4": 2}}
    assert dataset_views.point_from_selection([point], e) == (3, 17)
    assert dataset_views.point_from_selection([{"customdata": [i, 3, 17]}], e) == (3, 17)
    assert dataset_views.point_from_selection([{"customdata": {"0": 10 ** 9}}, {}], e) is None
    small = dataset_views.qk_embedding(ds, max_points=250)
    assert small.images_shown == 2 and small.images_total == 10 and small.xy.shape == (200, 2)


def test_every_dataset_figure_builds_on_real_data(real, tmp_path, real_file):
    ds = datasets.read_dataset(real_file)
    inputs = dataset_figures.DataSetInputs(ds, lambda: dataset_views.qk_embedding(ds))
    view = dataset_figures.DataSetView()
    for name in dataset_figures.DATASET_FIGURES:
        fig = dataset_figures.build(name, inputs, view)
        assert fig.layout.title.text and fig.layout.font.size >= 14, name
    dist = dataset_figures.build("dataset_distance", inputs, view)
    np.testing.assert_allclose(dist.data[0].y, ds.distance.mean(axis=0).ravel(), rtol=1e-5)
    assert dist.layout.yaxis.range[1] >= 28  # the 28 px input: the largest distance worth an axis
    # the q/k figure alone depends on the colouring; no figure depends on a model or an image
    assert dataset_figures.cache_key("dataset_qk", view) != dataset_figures.cache_key(
        "dataset_qk", dataset_figures.replace(view, colour_by="row"))
    assert dataset_figures.cache_key("dataset_entropy", view) == dataset_figures.cache_key(
        "dataset_entropy", dataset_figures.replace(view, colour_by="row"))
    rows, meta = real
    plain = datasets.read_dataset(fx.write(tmp_path / "noqk.parquet", rows, dict(meta, qk_head=None, qk_layer=None),
                                           drop=("queries", "keys")))
    assert not plain.has_qk
    assert not dataset_figures.spec("dataset_qk").available(dataset_figures.DataSetInputs(plain, lambda: None))


def test_image_names_from_a_file_are_text_in_the_figure(real, tmp_path):
    rows, meta = real
    evil = [dict(rows[0], image="<b>bold<br><span style='font-size:99px'>&.png")]  # plotly reads these tags
    ds = datasets.read_dataset(fx.write(tmp_path / "evil.parquet", evil, meta))
    inputs = dataset_figures.DataSetInputs(ds, lambda: dataset_views.qk_embedding(ds))
    fig = dataset_figures.build("dataset_qk", inputs, dataset_figures.DataSetView())
    assert set(fig.data[0].text) == {"&lt;b&gt;bold&lt;br&gt;&lt;span style='font-size:99px'&gt;&amp;.png"}
