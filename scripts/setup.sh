#!/usr/bin/env bash
# Set up a fresh Debian machine with Python 3.11: a virtual environment in .venv with the
# package and its test dependencies; with RADIPOP_NEED_CHROMIUM=1 Debian's Chromium (browser
# tests), Orthanc with its DICOMweb plugin (PACS tests) and configurable-http-proxy from npm
# (the JupyterHub test).
# Idempotent: a second run only checks. Sourced by dashboard.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.radipop-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing radipop-widgets and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi

if [ "${RADIPOP_NEED_CHROMIUM:-0}" = 1 ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
  [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "[setup] installing Debian's ${missing[*]} for the browser and PACS tests"
      apt-get update -qq
      # policy-rc.d keeps Debian from starting Orthanc as a service: the tests start their own.
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
      rm -f /usr/sbin/policy-rc.d
    else
      echo "[setup] missing: ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}'" \
           "or the browser / PACS tests will be skipped" >&2
    fi
  fi
  if [ ! -x .venv/node/bin/configurable-http-proxy ] && command -v npm >/dev/null; then
    echo "[setup] installing configurable-http-proxy (JupyterHub's proxy) from npm into .venv/node"
    npm install --silent --prefix .venv/node -g configurable-http-proxy >/dev/null
  fi
fi
