#!/usr/bin/env bash
# Set up (once; see scripts/setup.sh) and start the app on the built-in models:
#   bash scripts/app.sh [streamlit options]
# Streamlit runs from the project's environment (.venv/ unless PATCHLIGHT_VENV says otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/python-env.sh
exec "$PATCHLIGHT_PY" -m streamlit run app.py "$@"
