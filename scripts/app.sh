#!/usr/bin/env bash
# Set up and start the app on the built-in models: bash scripts/app.sh [streamlit options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ${PYTHON:-python3} -m streamlit run app.py "$@"
