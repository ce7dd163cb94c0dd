# Sourced (not run) by setup.sh, app.sh and test.sh: which Python environment Patchlight uses.
# Sets PATCHLIGHT_ENV_DIR (the virtualenv; empty when PATCHLIGHT_VENV=system) and PATCHLIGHT_PY
# (the interpreter that installs and runs everything). It creates nothing; setup.sh does.
#
#   PATCHLIGHT_VENV unset    the active virtualenv ($VIRTUAL_ENV) if there is one, else .venv/ here
#   PATCHLIGHT_VENV=DIR      the virtualenv in DIR (created when missing)
#   PATCHLIGHT_VENV=system   no virtualenv: $PYTHON itself (a container's Python, a conda env)
#   PYTHON                   the base interpreter: it creates the virtualenv, or is used as is
#                            with PATCHLIGHT_VENV=system (default: python3 on PATH)
PATCHLIGHT_BASE_PY=${PYTHON:-python3}
case "${PATCHLIGHT_VENV:-}" in
  system)
    PATCHLIGHT_ENV_DIR=
    PATCHLIGHT_PY=$PATCHLIGHT_BASE_PY ;;
  "")
    PATCHLIGHT_ENV_DIR=${VIRTUAL_ENV:-$PWD/.venv}
    PATCHLIGHT_PY=$PATCHLIGHT_ENV_DIR/bin/python ;;
  *)
    case $PATCHLIGHT_VENV in
      /*) PATCHLIGHT_ENV_DIR=$PATCHLIGHT_VENV ;;
      *) PATCHLIGHT_ENV_DIR=$PWD/$PATCHLIGHT_VENV ;;  # relative to the repository root
    esac
    PATCHLIGHT_PY=$PATCHLIGHT_ENV_DIR/bin/python ;;
esac
