#!/usr/bin/env bash
# The README's run command: set up .venv on first use, then serve notebooks/radipop.ipynb with
# Voila on 127.0.0.1 and print the URL.
#
#   bash scripts/dashboard.sh                          # port 8866, the bundled phantom
#   PORT=8870 RADIPOP_DATA=/path/to/studies bash scripts/dashboard.sh
#   bash scripts/dashboard.sh --port 8870 --data /path/to/studies --token SECRET
#   bash scripts/dashboard.sh --max-kernels 4 --cull-after 30   # RADIPOP_MAX_KERNELS, RADIPOP_CULL_AFTER
#
# Safe settings (radipop_widgets/serve.py, docs/USAGE.md "Server limits"): loopback only, no
# static files served from the working directory, websocket frames checked before they are
# read, the kernel of a closed page freed (at once, or --cull-after seconds after its page
# went), at most --max-kernels pages at a time, optional token (RADIPOP_TOKEN or --token),
# printed once and redacted in the log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
if [ -z "${RADIPOP_DATA:-}" ] && [[ " $* " != *" --data"* ]]; then
  # Generate the default study now (once, cached) so the first page opens quickly.
  .venv/bin/python -c "from radipop_widgets.io.phantom import phantom_study_path as p; \
print('[dashboard] default study:', p())"
fi
exec .venv/bin/python -m radipop_widgets.serve "$@"
