"""The CLI stays light (DESIGN: model/ never imports streamlit, plotly, viz or the app layer)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.mark.xfail(strict=False, reason="viz/__init__ imports every figure module (plotly) and viz/colormaps "
                                        "imports plotly.colors, so importing viz.overlay/viz.export loads plotly; "
                                        "passes once viz loads its overlay without plotly")
def test_explain_cli_does_not_import_plotly(tmp_path):
    assert not _explain_cli_modules(tmp_path)["plotly"]
