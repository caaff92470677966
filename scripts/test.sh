#!/usr/bin/env bash
# Runs the whole test suite against the simulated hardware. Sets up what it needs first.
# Extra arguments go to pytest, e.g. scripts/test.sh -k mcu -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/system-deps.sh"
"$root/scripts/venv.sh"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
