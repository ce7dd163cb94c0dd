#!/usr/bin/env bash
# Set up and run every test: bash scripts/test.sh [pytest options]
# Installs the test requirements into the project's environment (scripts/setup.sh dev), the
# Fashion-MNIST data set, Chromium and nginx (Debian packages, when apt-get is available and they are
# missing), then runs pytest with the environment's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nginx >/dev/null || need+=(nginx-light)  # scripts/demo.sh --workers N and its e2e test
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "test: installing ${need[*]} with apt-get"
    log=$( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") 2>&1 ) \
      || { echo "$log" | tail -n 5 >&2; echo "test: error: apt-get could not install ${need[*]}" >&2; exit 1; }
  else
    echo "note: missing ${need[*]}; the tests that need them will be skipped (install with apt-get)" >&2
  fi
fi
. scripts/python-env.sh
exec "$PATCHLIGHT_PY" -m pytest "$@"
