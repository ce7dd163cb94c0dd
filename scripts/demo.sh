#!/usr/bin/env bash
# Start Patchlight the way the hosted public demo runs on one box.
#
#   bash scripts/demo.sh [--port PORT] [--address ADDR] [--workers N] [--maps-as-base64] [--defaults]
#                        [-- extra streamlit flags]
#
# --port      listening port (default $PORT or 8501)
# --address   listening address (default $ADDRESS or 0.0.0.0: the demo is public)
# --workers   N Streamlit processes (default $WORKERS or 1) behind nginx with sticky sessions;
#             one process runs every session's script on about one core (one GIL), so a box
#             with C cores serves a class best with about C workers. Needs nginx (apt-get install
#             nginx-light); the workers listen on 127.0.0.1, PORT+1 … PORT+N.
# --maps-as-base64  send maps that are not attention weights as plotly's base64 float32 instead
#             of JSON numbers rounded to what their hover shows (PATCHLIGHT_MAPS_AS_NUMBERS=0;
#             attention weights go as whole counts either way). The numbers are the default here,
#             where the websocket is deflated: at 40 visitors 28 KB per interaction on the wire
#             instead of 29, no difference in server CPU measured.
# --defaults  leave Streamlit's file watcher and runner at their defaults (gc after every run)
#             instead of the production runner settings; the only use is to measure what
#             those settings buy (bench/load.py runs both back to back). Hardening stays on.
# Anything after `--` goes to `streamlit run` unchanged and wins over the flags below.
#
# What it sets, and why (issue 13 item 6, issue 15):
#   PATCHLIGHT_PUBLIC=1          hosted-demo mode: no local model paths, hub allow-list only.
#   OPENBLAS/OMP/MKL threads = 1 every session's numpy/torch call runs on one core, so
#                                concurrent visitors share the cores instead of oversubscribing
#                                them (torch.set_num_threads follows OMP_NUM_THREADS).
#   MALLOC_ARENA_MAX=2           every session's script runs in its own thread, and glibc gives
#                                each thread its own malloc arena that keeps the memory its torch
#                                and numpy temporaries freed; two arenas bound that (issue 15).
#   MALLOC_MMAP_THRESHOLD_=131072  arrays from 128 KB up are mmapped and go back to the system when
#                                freed. glibc's default threshold grows to the largest block freed
#                                (a trace's 20 MB attention), after which such blocks come from the
#                                arenas and stay resident: 40 visitors peaked at 4.5 GB without it,
#                                3.3 GB with it (bench/load.py, issue 15).
#   (PATCHLIGHT_WARM, default on) scripts/serve.py warms each worker as it starts: the built-in
#                                models loaded, the gallery traced into the trace cache
#                                (app_pages/warm.py), ~3.5 s of one core and ~0.8 GB per worker
#                                from the start; without it a worker's first visitor paid that
#                                while everyone routed there waited (40 visitors: p95 1.04-1.55 s
#                                -> 0.74-1.27 s). PATCHLIGHT_WARM=0: off.
#   server.fileWatcherType none  no watcher thread, no source polling on a server that never
#   server.runOnSave false       changes its code; server.allowRunOnSave false also stops a
#   server.allowRunOnSave false  visitor's browser from turning run-on-save on.
#   runner.postScriptGC false    no full gc.collect() after every script run: with a model and
#                                traces in memory each collection walks every live object, and
#                                it ran after every slider move of every visitor (issue 13 item 6:
#                                p95 at 10 visitors 5-6 s -> 1.4-1.5 s together with no watcher).
#                                CPython's generational collector still runs on its own.
#   runner.fastReruns true       a newer rerun of the same visitor stops the outdated one instead
#                                of queueing behind it: less wasted CPU when sliders are dragged.
#   server.headless true, browser.gatherUsageStats false, client.toolbarMode viewer,
#   client.showErrorDetails none       no browser launch, no telemetry, no developer menu
#                                (rerun / clear cache), no tracebacks in visitors' browsers.
#   server.enableXsrfProtection true, server.enableCORS true    (Streamlit's defaults, pinned).
#   server.enableWebsocketCompression true   permessage-deflate on the websocket: a class shares
#                                one Wi-Fi; 3x fewer bytes per interaction at no measurable CPU
#                                cost. scripts/serve.py starts Streamlit with the deflate at zlib
#                                level 1 (2-3x less CPU than its level 6 for 5-13% more bytes).
#                                bench/load.py reports the bytes both ways.
#   server.maxUploadSize         read from .streamlit/config.toml (equal to the app's own check).
#   server.enableStaticServing false, global.developmentMode false    nothing else is served.
#
# Growing past one process (--workers N, below): Streamlit keeps each visitor's session in the
# process that served its websocket, so more processes need a sticky proxy (by cookie or by
# client address) in front. The intended shape: this script stays the start of ONE worker
# (`--port`, `--address 127.0.0.1` behind the proxy); a supervisor starts N of them on
# consecutive ports; the proxy (e.g. nginx `hash $remote_addr consistent;` or HAProxy
# `balance source`, websocket upgrade on /_stcore/stream) spreads visitors over them, and
# server.cookieSecret must then be the same in every worker. bench/load.py measures one port
# either way.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8501}
ADDRESS=${ADDRESS:-0.0.0.0}
RUNNER=production
WORKERS=${WORKERS:-1}
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT=$2; shift 2 ;;
    --port=*) PORT=${1#*=}; shift ;;
    --address) ADDRESS=$2; shift 2 ;;
    --address=*) ADDRESS=${1#*=}; shift ;;
    --defaults) RUNNER=defaults; shift ;;
    --maps-as-base64) export PATCHLIGHT_MAPS_AS_NUMBERS=0; shift ;;
    --maps-as-numbers) export PATCHLIGHT_MAPS_AS_NUMBERS=1; shift ;;  # the default (was a flag before)
    --workers) WORKERS=$2; shift 2 ;;
    --workers=*) WORKERS=${1#*=}; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$PORT" in ''|*[!0-9]*) echo "demo.sh: --port needs a number, got '$PORT'" >&2; exit 2 ;; esac
case "$WORKERS" in ''|*[!0-9]*|0) echo "demo.sh: --workers needs a number ≥ 1, got '$WORKERS'" >&2; exit 2 ;; esac

if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi

# The upload limit lives in .streamlit/config.toml (kept equal to the app's MAX_UPLOAD_MB);
# repeat it here so a flag elsewhere can never make the two differ.
MAX_UPLOAD=$(sed -n 's/^[[:space:]]*maxUploadSize[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' \
  .streamlit/config.toml | head -n 1)
MAX_UPLOAD=${MAX_UPLOAD:-20}

export PATCHLIGHT_PUBLIC=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-131072}
export STREAMLIT_BROWSER_GATHER_USAGE_STATS=false  # also before the config is read

if [ "$RUNNER" = production ]; then
  RUNNER_FLAGS=(--server.fileWatcherType none --runner.postScriptGC false --runner.fastReruns true)
else  # Streamlit's own defaults, for comparison only
  RUNNER_FLAGS=(--server.fileWatcherType auto --runner.postScriptGC true --runner.fastReruns true)
fi

FLAGS=(
  --server.port "$PORT"
  --server.address "$ADDRESS"
  --server.headless true
  --server.runOnSave false
  --server.allowRunOnSave false
  --server.enableXsrfProtection true
  --server.enableCORS true
  --server.enableWebsocketCompression true
  --server.enableStaticServing false
  --server.maxUploadSize "$MAX_UPLOAD"
  --global.developmentMode false
  --client.toolbarMode viewer
  --client.showErrorDetails none
  --browser.gatherUsageStats false
  "${RUNNER_FLAGS[@]}"
)
if [ "$WORKERS" = 1 ]; then
  exec "$PY" scripts/serve.py run app.py "${FLAGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
fi

# Several workers: each is a full Streamlit server (its own model copy and caches) on
# 127.0.0.1; nginx in front routes every request of one browser to the same worker. The route is
# a cookie nginx sets on the first answer (a random id, hashed consistently over the workers), so
# the page, the websocket and the uploads of a visitor always meet the session they belong to.
# The workers share one cookie secret, so Streamlit's XSRF cookie is valid on any of them.
command -v nginx >/dev/null || { echo "demo.sh: --workers $WORKERS needs nginx (apt-get install nginx-light)" >&2; exit 2; }
RUN=$(mktemp -d "${TMPDIR:-/tmp}/patchlight-demo.XXXXXX")
chmod 755 "$RUN"  # nginx's worker may run as another user (as root it drops to nobody)
SECRET=$("$PY" -c "import secrets; print(secrets.token_hex(32))")
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$RUN"; }
trap cleanup EXIT INT TERM
UPSTREAM=""
for i in $(seq 1 "$WORKERS"); do
  WPORT=$((PORT + i))
  WFLAGS=("${FLAGS[@]}")
  WFLAGS[1]=$WPORT; WFLAGS[3]=127.0.0.1  # --server.port, --server.address
  STREAMLIT_SERVER_COOKIE_SECRET=$SECRET "$PY" scripts/serve.py run app.py "${WFLAGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} &
  PIDS+=($!)
  UPSTREAM+="    server 127.0.0.1:$WPORT;"$'\n'
done
cat > "$RUN/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $RUN/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $RUN/body; proxy_temp_path $RUN/proxy;
  fastcgi_temp_path $RUN/fastcgi; uwsgi_temp_path $RUN/uwsgi; scgi_temp_path $RUN/scgi;
  client_max_body_size $((MAX_UPLOAD + 1))m;
  map \$cookie_patchlight_route \$patchlight_route { "" \$request_id; default \$cookie_patchlight_route; }
  map \$http_upgrade \$connection_upgrade { default upgrade; "" close; }
  upstream patchlight {
    hash \$patchlight_route consistent;
$UPSTREAM  }
  server {
    listen $ADDRESS:$PORT;
    location / {
      proxy_pass http://patchlight;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 86400s;
      proxy_buffering off;
      proxy_request_buffering off;  # uploads stream to the worker: no temp files, no disk
      add_header Set-Cookie "patchlight_route=\$patchlight_route; Path=/; SameSite=Lax; HttpOnly" always;
    }
  }
}
NGINX
nginx -c "$RUN/nginx.conf" &
PIDS+=($!)
wait -n "${PIDS[@]}"  # any process ending ends the demo (the trap stops the others)
