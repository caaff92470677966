#!/usr/bin/env bash
# The main job on a fresh machine: the simulated sorting cell at 12,000 parcels/hour for
# 60 s with the real node beside it, on the embedded MQTT broker, then the report.
# Extra arguments go to `wolfpack sim` (e.g. --faults brain-absent@10+20 --duration 90).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/venv.sh"
exec "$root/.venv/bin/wolfpack" sim --rate 12000 --duration 60 --report sim-report.json "$@"
