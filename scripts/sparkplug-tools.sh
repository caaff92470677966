#!/usr/bin/env bash
# The independent Sparkplug host of tests/system/test_sparkplug_host.py: Eclipse Tahu's
# JavaScript payload library (sparkplug-payload) and MQTT.js, installed from npm into
# .tools/sparkplug (git-ignored) only when missing. Prints the node_modules folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.tools/sparkplug"
if [ ! -d "$dir/node_modules/sparkplug-payload" ] || [ ! -d "$dir/node_modules/mqtt" ] \
  || [ ! -d "$dir/node_modules/long" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "sparkplug-tools: npm is missing (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "wolfpack-sparkplug-tools", "private": true}' \
    > "$dir/package.json"
  echo "==> installing sparkplug-payload, mqtt and long into $dir" >&2
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    sparkplug-payload@1.0.3 mqtt@5.16.0 long@5.3.2 >&2
fi
echo "$dir/node_modules"
