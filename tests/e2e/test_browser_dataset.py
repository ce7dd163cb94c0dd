"""The Data set page in headless Chromium (`pytest -m browser`): upload a real result through the
file chooser, see its figures, and click a point of the query/key embedding (a WebGL scatter) —
the real plotly click, which AppTest cannot send — to land in the Explorer on that image and token."""
from __future__ import annotations

import sys
from pathlib import Path

from test_browser import _idle, _shot, page, pytestmark, server, shots  # noqa: F401  (shared fixtures and marks)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

POINT_JS = """(title) => {
    const gd = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
        .find(g => (g.layout.title.text || '').startsWith(title));
    gd.scrollIntoView({block: 'center'});
    const fl = gd._fullLayout, tr = gd._fullData[0];
    // the point of trace 0 (queries) farthest from the others' centre: alone, so a click hits it
    let best = 0, far = -1;
    const mx = tr.x.reduce((a, b) => a + b, 0) / tr.x.length, my = tr.y.reduce((a, b) => a + b, 0) / tr.y.length;
    for (let i = 0; i < tr.x.length; i++) {
        const d = (tr.x[i] - mx) ** 2 + (tr.y[i] - my) ** 2;
        if (d > far) { far = d; best = i; }
    }
    const box = gd.getBoundingClientRect();
    return {x: box.left + fl._size.l + fl.xaxis.l2p(tr.x[best]), y: box.top + fl._size.t + fl.yaxis.l2p(tr.y[best]),
            token: tr.customdata[best][2], image: tr.customdata[best][1], name: tr.text[best]};
}"""


def test_a_click_on_the_qk_embedding_opens_the_explorer(server, page, tmp_path, shots):  # noqa: F811
    import dataset_fixtures as fx

    result = fx.write(tmp_path / "result.parquet", *fx.fashion_rows(qk=(1, 0)))
    pg = page
    pg.goto(f"{server}/dataset")
    dropzone = pg.get_by_test_id("stMain").get_by_test_id("stFileUploaderDropzone")
    with pg.expect_file_chooser() as chooser:
        dropzone.click()
    chooser.value.set_files(str(result))
    pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .gtitle')]"
                         ".some(t => t.textContent.startsWith('Queries and keys'))")
    _idle(pg)
    assert not pg.get_by_test_id("stException").count()
    assert pg.get_by_test_id("stPlotlyChart").count() == 5
    _shot(pg, shots, "dataset.png")
    point = pg.evaluate(POINT_JS, "Queries and keys")
    pg.wait_for_timeout(500)
    point = pg.evaluate(POINT_JS, "Queries and keys")  # after the scroll settled
    pg.mouse.move(point["x"], point["y"])
    pg.wait_for_timeout(300)
    pg.mouse.click(point["x"], point["y"])
    pg.get_by_test_id("stMain").get_by_text(f"fashion-vit on {point['name']}", exact=False).first.wait_for()
    _idle(pg)
    assert pg.get_by_test_id("stMain").locator("h1").first.text_content().startswith("Explorer")
    query = pg.locator('input[aria-label="Query token"]').input_value()
    patch = point["token"] - 1
    assert query.startswith(f"patch {patch} (row {patch // 7}") or (point["token"] == 0 and query == "CLS"), query
