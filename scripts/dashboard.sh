#!/usr/bin/env bash
# The README's run command: set up .venv on first use, then serve notebooks/radipop.ipynb with
# Voila on 127.0.0.1 and print the URL.
#
#   bash scripts/dashboard.sh                          # port 8866, the bundled phantom
#   PORT=8870 RADIPOP_DATA=/path/to/studies bash scripts/dashboard.sh
#   bash scripts/dashboard.sh --port 8870 --data /path/to/studies --token SECRET
#
# Safe settings (radipop_widgets/serve.py): loopback only, no static files served from the
# working directory, idle kernels culled, optional token (RADIPOP_TOKEN or --token).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
if [ -z "${RADIPOP_DATA:-}" ] && [[ " $* " != *" --data"* ]]; then
  # Generate the default study now (once, cached) so the first page opens quickly.
  .venv/bin/python -c "from radipop_widgets.io.phantom import phantom_study_path as p; \
print('[dashboard] default study:', p())"
fi
exec .venv/bin/python -m radipop_widgets.serve "$@"
