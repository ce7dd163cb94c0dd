"""`patchlight app` / `python -m model app`: finds the checkout's app.py, hands every option to
`streamlit run` untouched, says in one line what to do without a checkout, and never imports
streamlit itself."""
import subprocess
import sys
from pathlib import Path

import pytest

from model import cli, launcher

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_app(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "app" in capsys.readouterr().out


def test_app_runs_streamlit_on_the_checkout(monkeypatch, tmp_path):
    pytest.importorskip("streamlit")
    calls = []
    monkeypatch.chdir(tmp_path)  # restored after the test; run_app moves to the checkout
    monkeypatch.setattr(launcher.os, "name", "posix")
    monkeypatch.setattr(launcher.os, "execv", lambda path, argv: calls.append((path, argv)))
    cli.main(["app", "--server.headless", "true", "--server.port", "8599"])
    assert calls == [(sys.executable, [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                                       "--server.headless", "true", "--server.port", "8599"])]
    assert Path.cwd() == REPO  # streamlit reads .streamlit/config.toml from the working directory


def test_app_without_a_checkout_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(launcher, "__file__", str(tmp_path / "site-packages" / "model" / "launcher.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launcher.os, "execv", lambda *a: pytest.fail("must not start streamlit"))
    assert cli.main(["app"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "clone" in err[0]


def test_cli_and_launcher_do_not_import_streamlit():
    code = "import sys, model.cli, model.launcher; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
