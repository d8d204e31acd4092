#!/usr/bin/env bash
# The README's test command: set up, then run the whole suite (unit, notebooks, browser).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RADIPOP_NEED_CHROMIUM=1 source scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
