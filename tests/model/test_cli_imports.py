"""The CLI stays light (DESIGN: model/ never imports streamlit, plotly, viz or the app layer)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "fashion-7-sneaker.png"
HEAVY = ("plotly", "streamlit", "model.app_support", "app_core", "app_pages")


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loaded(names) -> str:
    return f"json.dumps({{n: n in sys.modules for n in {list(names)!r}}})"


def test_model_layer_of_explain_imports_no_app_or_plotting():
    """Loading, tracing and explaining — everything the CLI does before the PNG — stays light."""
    code = (
        "import json, sys\n"
        "from model.cli import load_images\n"
        "from model.explain import explain\n"
        "from model.loading import load_model\n"
        f"(img,) = load_images([__import__('pathlib').Path({str(SAMPLE)!r})])\n"
        "explain(load_model('fashion-vit', device='cpu'), img, 'chefer')\n"
        f"print({_loaded(HEAVY + ('viz',))})\n"
    )
    loaded = _run(code)
    assert not any(loaded.values()), loaded


def _explain_cli_modules(tmp_path) -> dict:
    code = (
        "import json, runpy, sys\n"
        f"sys.argv = ['model', 'explain', {str(SAMPLE)!r}, '--model', 'fashion-vit', '--method', 'rollout',"
        f" '--out', {str(tmp_path / 'm.png')!r}, '--device', 'cpu']\n"
        "try:\n    runpy.run_module('model', run_name='__main__')\n"
        "except SystemExit as stop:\n    assert not stop.code, stop.code\n"
        f"print({_loaded(HEAVY)})\n"
    )
    loaded = _run(code)
    assert (tmp_path / "m.png").stat().st_size > 0
    return loaded


def test_explain_cli_imports_neither_streamlit_nor_the_app(tmp_path):
    loaded = _explain_cli_modules(tmp_path)
    assert not any(v for k, v in loaded.items() if k != "plotly"), loaded


def test_explain_cli_does_not_import_plotly(tmp_path):
    assert not _explain_cli_modules(tmp_path)["plotly"]


def test_stored_colormaps_equal_plotlys():
    """The command line colours maps from stored stops; they are plotly's, so a PNG from the
    CLI and the figure on screen agree."""
    import plotly.colors

    from model import colormaps
    from viz import colormaps as figure_colormaps

    for name, stops in colormaps.named_scales().items():
        assert stops == [[float(p), c] for p, c in plotly.colors.get_colorscale(name)], name
    for name in colormaps.SEQUENTIAL + colormaps.DIVERGING:
        ours = figure_colormaps.colorscale(name)
        theirs = [[float(p), c] for p, c in plotly.colors.get_colorscale(name)]
        assert [c for _, c in ours] == [c for _, c in theirs], name
        np.testing.assert_allclose([p for p, _ in ours], [p for p, _ in theirs], atol=1e-12)
