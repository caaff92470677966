#!/usr/bin/env bash
# Runs the whole test suite against the simulated hardware. Sets up what it needs first.
# Extra arguments go to pytest, e.g. scripts/test.sh -k mcu -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/system-deps.sh"
"$root/scripts/venv.sh"
# npm tools of the contract and Sparkplug tests (installed once, outside pytest's time)
"$root/scripts/asyncapi-tools.sh" >/dev/null
"$root/scripts/sparkplug-tools.sh" >/dev/null
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
