"""`patchlight app [streamlit options]` (and `python -m model app …`): start the UI.
The `patchlight` command is the model CLI (`patchlight predict …` = `python -m model predict …`),
whose `app` command lands here.

The UI is `app.py` in the repository checkout, so `app` needs one: the checkout this package
was installed from in editable mode (`pip install -e .`), or the current directory when it is a
checkout. Streamlit runs in a new process (`python -m streamlit run app.py`); this module never
imports it, so the model layer stays free of streamlit.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def find_checkout() -> Path | None:
    """The Patchlight checkout holding app.py and app_pages/, or None."""
    package_parent = Path(__file__).resolve().parent.parent  # the checkout, in an editable install
    for root in (package_parent, Path.cwd()):
        if (root / "app.py").is_file() and (root / "app_pages").is_dir():
            return root
    return None


def run_app(streamlit_args: list[str]) -> int:
    """Start `streamlit run app.py` with the given options; returns only on failure (or on Windows)."""
    root = find_checkout()
    if root is None:
        print("error: `patchlight app` needs a Patchlight repository checkout (app.py and app_pages/); "
              "run it from a clone, or install the package from one with `pip install -e .`", file=sys.stderr)
        return 2
    if importlib.util.find_spec("streamlit") is None:
        print(f"error: streamlit is not installed in {sys.executable}; "
              f"run `bash scripts/setup.sh` in {root} (or `pip install -r requirements.txt`)", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), *streamlit_args]
    # Streamlit reads .streamlit/config.toml (upload limits, theme) from the working directory.
    os.chdir(root)
    if os.name == "nt":  # no exec on Windows: wait for the child and pass on its status
        return subprocess.call(command)
    os.execv(sys.executable, command)
    return 0  # not reached

