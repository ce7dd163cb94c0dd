"""The Data set page through AppTest: a real result uploaded or opened by path, its views, bad
files, public mode, and a click on the q/k embedding opening its image and token in the Explorer."""
from __future__ import annotations

import hashlib

import dataset_fixtures as fx
import pytest
from streamlit.testing.v1 import AppTest
from test_app import APP, TIMEOUT, assert_clean, figures, needs_fashion, plain, texts, titles

pytestmark = [pytest.mark.filterwarnings("ignore"), needs_fashion]


@pytest.fixture(scope="module")
def real():
    return fx.fashion_rows(qk=(2, 1))


@pytest.fixture()
def result(real, tmp_path):
    return fx.write(tmp_path / "out" / "part-00000.parquet", *real)


def dataset_page(monkeypatch=None, public=False) -> AppTest:
    if monkeypatch is not None:
        monkeypatch.setenv("PATCHLIGHT_PUBLIC", "1" if public else "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/dataset.py").run()
    assert_clean(at)
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="dataset_file").set_value((name, data, "application/octet-stream")).run()
    assert_clean(at)
    return at


def test_upload_a_result_and_see_every_view(result):
    at = dataset_page()
    assert "python -m model dataset" in texts(at)
    upload(at, "part-00000.parquet", result.read_bytes())
    shown = titles(at)
    assert any(t.startswith("Mean attention distance per head over 10 images") for t in shown)
    assert any(t.startswith("Attention entropy per head over 10 images") for t in shown)
    assert any(t.startswith("Where artifact tokens appear") for t in shown)
    assert any(t.startswith("Artifact tokens per image") for t in shown)
    assert any(t == "Queries and keys of layer 2, head 1 over 10 images" for t in shown)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "11" and metrics["Processed"] == "10" and metrics["Failed"] == "1"
    assert metrics["Accuracy"].endswith("%")
    assert "1 image(s) could not be processed" in [e.label for e in at.expander]
    qk = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("Queries and keys"))
    assert qk["data"][0]["marker"]["color"] != qk["data"][1]["marker"]["color"]  # queries vs keys
    at.segmented_control(key="dataset_colour").set_value("row").run()
    assert_clean(at)
    qk = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("Queries and keys"))
    assert "colorscale" in qk["data"][0]["marker"]  # now coloured by the patch row
    # the result outlives a visit to another page; removing the file forgets it
    at.switch_page("app_pages/heads.py").run()
    at.switch_page("app_pages/dataset.py").run()
    assert_clean(at)
    assert len(figures(at)) == 5
    upload(at, "part-00000.parquet", result.read_bytes())
    at.file_uploader(key="dataset_file").set_value(None).run()
    assert not figures(at) and "Load a data-set result above" in texts(at)


@pytest.mark.parametrize("name, data, words", [
    ("notes.txt", b"hello", "is not a .parquet file"),
    ("broken.parquet", b"PAR1 garbage", "not a readable Parquet file"),
])
def test_a_bad_file_is_a_clear_error(name, data, words):
    at = upload(dataset_page(), name, data)
    assert at.error and words in plain(at.error[0].value)
    assert "cannot be used" in plain(at.error[0].value) and not figures(at)


def test_a_result_in_another_format_says_so(real, tmp_path):
    data = fx.write(tmp_path / "v2.parquet", real[0], dict(real[1], format=2)).read_bytes()
    at = upload(dataset_page(), "v2.parquet", data)
    assert "format 2, but this Patchlight reads format 1" in plain(at.error[0].value)


def test_a_result_without_queries_and_keys(real, tmp_path):
    rows, meta = real
    data = fx.write(tmp_path / "s.parquet", rows, dict(meta, qk_head=None), drop=("queries", "keys")).read_bytes()
    at = upload(dataset_page(), "s.parquet", data)
    assert len(figures(at)) == 4 and "stores no queries and keys" in texts(at)


def test_open_by_path_locally_never_in_public(result, monkeypatch):
    at = dataset_page(monkeypatch)
    at.radio(key="dataset_source").set_value("path").run()
    at.text_input(key="dataset_path").input(str(result.parent)).run()
    assert_clean(at)
    assert len(figures(at)) == 5
    at.switch_page("app_pages/explorer.py").run()
    at.switch_page("app_pages/dataset.py").run()  # back: the path and its views are still there
    assert at.radio(key="dataset_source").value == "path" and at.text_input(key="dataset_path").value == str(
        result.parent)
    assert len(figures(at)) == 5
    public = dataset_page(monkeypatch, public=True)
    keys = {w.key for w in list(public.radio) + list(public.text_input)}
    assert not keys & {"dataset_source", "dataset_path"}  # only the uploader: no path on the server
    public.session_state["_dataset_kept"] = ("path", str(result.parent))  # a path kept from before
    public.run()
    assert "turned off in the hosted demo" in plain(public.error[0].value) and not figures(public)


def _click(at: AppTest, data: bytes, image: int, token: int) -> AppTest:
    """What the q/k figure's click callback records (a plotly click cannot be sent through AppTest;
    dataset_views.point_from_selection, which reads the click, is tested on its own)."""
    at.session_state["_dataset_open"] = (hashlib.sha256(data).hexdigest(), image, token)
    at.run()
    assert_clean(at)
    return at


def test_clicking_a_point_opens_its_image_and_token_in_the_explorer(real, result):
    rows, _ = real
    data = result.read_bytes()
    at = upload(dataset_page(), "part-00000.parquet", data)
    at.selectbox(key="model_choice").set_value("dinov2-small")  # the data set's model comes back with the image
    _click(at, data, 3, 10)
    assert [t.value for t in at.title] == ["Explorer"]
    image = rows[3]["image"].rsplit("/", 1)[-1]
    assert f"fashion-vit on {image}" in texts(at)
    ss = at.session_state
    assert (ss["query"], ss["layer"], ss["head"], ss["model_choice"]) == (10, 2, 1, "fashion-vit")
    assert ss["image_source"] == "upload"
    assert titles(at)[0].startswith("patch 9 (row 1, col 2)")  # token 10 = patch 9 behind CLS
    # an image uploaded afterwards wins over the opened one
    from test_app import image_bytes
    from test_app import upload as upload_image
    at.switch_page("app_pages/explorer.py")  # AppTest reruns the page it last switched to itself
    upload_image(at, "mine.png", image_bytes(size=(28, 28)))
    assert "fashion-vit on mine.png" in texts(at)


def test_a_point_whose_image_is_not_here_says_so(real, tmp_path):
    rows, meta = real
    moved = [dict(r, image=f"elsewhere/{i}.png") for i, r in enumerate(rows)]
    data = fx.write(tmp_path / "m.parquet", moved, meta).read_bytes()
    at = upload(dataset_page(), "m.parquet", data)
    _click(at, data, 0, 5)
    assert [t.value for t in at.title] == ["Data set"]
    assert "elsewhere/0.png is not a file on this machine" in plain(at.warning[0].value)


def test_public_mode_opens_no_file_named_in_a_data_set(result, monkeypatch):
    data = result.read_bytes()
    at = upload(dataset_page(monkeypatch, public=True), "part-00000.parquet", data)
    _click(at, data, 0, 5)
    assert [t.value for t in at.title] == ["Data set"]
    assert "does not open files named in a data set" in plain(at.warning[0].value)
    assert "_kept_upload" not in at.session_state  # nothing was read from the server's disk


def test_classroom_mode_draws_the_data_set_for_a_projector(result):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["classroom"] = "true"
    at.run()
    at.switch_page("app_pages/dataset.py").run()
    upload(at, "part-00000.parquet", result.read_bytes())
    shown = figures(at)
    assert len(shown) == 5 and all(f["layout"]["font"]["size"] >= 21 for f in shown)
