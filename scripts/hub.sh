#!/usr/bin/env bash
# The lab server for a trial on this machine: JupyterHub on 127.0.0.1, one login per user,
# each user's dashboard in their own process (docs/LAB_SERVER.md).
#
#   bash scripts/hub.sh                      # port 8000, the bundled phantom as shared data
#   bash scripts/hub.sh --port 8100
#   RADIPOP_DATA=/srv/studies RADIPOP_HUB_PASSWORD=a-long-secret bash scripts/hub.sh
#   RADIPOP_HUB_ISOLATION=unix bash scripts/hub.sh   # as root: hub users = unix users
#
# It prints the URL and the trial password. Every setting of deploy/hub/jupyterhub_config.py
# can be given in the environment (RADIPOP_HUB_*); the state (sqlite db, cookie secret, proxy
# token, the users' folders) is kept in RADIPOP_HUB_STATE (as root /var/lib/radipop-hub,
# else ~/.local/state/radipop-hub). Ctrl+C stops the hub, the proxy and every user's server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
RADIPOP_NEED_CHROMIUM=${RADIPOP_NEED_CHROMIUM:-0} source scripts/setup.sh

port=${RADIPOP_HUB_PORT:-${PORT:-8000}}
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --port=*) port=${1#--port=}; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "[hub] unknown option $1 (only --port N; the rest is set by RADIPOP_HUB_*)" >&2
       exit 2 ;;
  esac
done
export RADIPOP_HUB_PORT=$port

if [ "$(id -u)" = 0 ]; then default_state=/var/lib/radipop-hub
else default_state=$HOME/.local/state/radipop-hub; fi
export RADIPOP_HUB_STATE=${RADIPOP_HUB_STATE:-$default_state}
mkdir -p "$RADIPOP_HUB_STATE"
chmod 711 "$RADIPOP_HUB_STATE"   # users' servers reach their folder inside, nothing else

if [ -z "${RADIPOP_DATA:-}" ]; then
  # The bundled phantom, generated once into the state folder, read-only for the users.
  RADIPOP_DATA=$RADIPOP_HUB_STATE/data
  RADIPOP_CACHE=$RADIPOP_DATA .venv/bin/python -c \
    "from radipop_widgets.io.phantom import phantom_study_path as p; print('[hub] shared data:', p())"
  chmod -R u+rwX,go+rX,go-w "$RADIPOP_DATA"
fi
export RADIPOP_DATA

secret() { # a private file holding a random secret, made once
  [ -s "$1" ] || (umask 077; .venv/bin/python -c "import secrets; print(secrets.token_urlsafe($2))" > "$1")
  cat "$1"
}
export RADIPOP_HUB_PASSWORD=${RADIPOP_HUB_PASSWORD:-$(secret "$RADIPOP_HUB_STATE/trial_password" 9)}
export CONFIGPROXY_AUTH_TOKEN=${CONFIGPROXY_AUTH_TOKEN:-$(secret "$RADIPOP_HUB_STATE/proxy_auth_token" 32)}
export PATH=$repo/.venv/bin:$repo/.venv/node/bin:$PATH

if ! command -v configurable-http-proxy >/dev/null; then
  echo "[hub] configurable-http-proxy is missing: run 'RADIPOP_NEED_CHROMIUM=1 bash" \
       "scripts/setup.sh' (installs it from npm into .venv/node)" >&2
  exit 1
fi
echo "[hub] lab server: http://${RADIPOP_HUB_IP:-127.0.0.1}:$port/ (any user name, password:" \
     "$RADIPOP_HUB_PASSWORD; isolation ${RADIPOP_HUB_ISOLATION:-shared})"
cd "$RADIPOP_HUB_STATE"
exec "$repo/.venv/bin/jupyterhub" -f "$repo/deploy/hub/jupyterhub_config.py"
