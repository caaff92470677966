#!/usr/bin/env bash
# The official AsyncAPI validator (`asyncapi validate`, @asyncapi/cli, which parses with
# @asyncapi/parser) for tests/fleet_link/test_contract_asyncapi.py, installed from npm into
# .tools/asyncapi (git-ignored) only when it is missing. Prints the path of the `asyncapi`
# binary. @asyncapi/cli 4.x: the 5.x and 6.x lines need node >= 24, Debian ships node 20.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.tools/asyncapi"
cli_version="4.1.1"
bin="$dir/node_modules/.bin/asyncapi"
if [ ! -x "$bin" ] || [ ! -d "$dir/node_modules/@asyncapi/parser" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "asyncapi-tools: npm is missing (Debian: apt-get install npm)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "wolfpack-asyncapi-tools", "private": true}' \
    > "$dir/package.json"
  echo "==> installing @asyncapi/cli@$cli_version into $dir" >&2
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    "@asyncapi/cli@$cli_version" >&2
  # no usage metrics sent from CI or a developer's run (the CLI asks nothing, sends nothing)
  "$bin" config analytics --disable >/dev/null 2>&1 || true
fi
echo "$bin"
