#!/usr/bin/env bash
# The official AsyncAPI validator (`asyncapi validate` of @asyncapi/cli, with the
# @asyncapi/parser it is built on) for tests/fleet_link/test_contract_asyncapi.py. Prints the
# path of the `asyncapi` binary; installs it from npm only when it is missing.
#
# Where: .tools/asyncapi/ in the checkout (git-ignored). The install itself (1,500 npm
# packages, minutes on a busy 2-core box) is kept once per machine in the user's cache,
# ${WOLFPACK_TOOLS_CACHE:-~/.cache/wolfpack}/asyncapi-cli-<version>, and .tools/asyncapi
# links to it, so a fresh clone (CI) finds it at once. No npm install scripts are run.
# @asyncapi/cli 4.x: the 5.x and 6.x lines need node >= 24; Debian ships node 20.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli_version="4.1.1"
local_dir="$root/.tools/asyncapi"
cache_root="${WOLFPACK_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wolfpack}"
cache_dir="$cache_root/asyncapi-cli-$cli_version"

complete() {  # a finished install of this version (the marker is written last)
  [ -x "$1/node_modules/.bin/asyncapi" ] && [ -d "$1/node_modules/@asyncapi/parser" ] &&
    [ "$(cat "$1/.installed" 2>/dev/null)" = "$cli_version" ]
}

if ! complete "$local_dir"; then
  if ! complete "$cache_dir"; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "asyncapi-tools: npm is missing (Debian: apt-get install npm; scripts/system-deps.sh)" >&2
      exit 1
    fi
    echo "==> installing @asyncapi/cli@$cli_version into $cache_dir (once per machine)" >&2
    rm -rf "$cache_dir.tmp"
    mkdir -p "$cache_dir.tmp"
    echo '{"name": "wolfpack-asyncapi-tools", "private": true}' > "$cache_dir.tmp/package.json"
    npm install --prefix "$cache_dir.tmp" --no-audit --no-fund --loglevel=error \
      --ignore-scripts --omit=optional "@asyncapi/cli@$cli_version" >&2
    echo "$cli_version" > "$cache_dir.tmp/.installed"
    rm -rf "$cache_dir"
    mv "$cache_dir.tmp" "$cache_dir"
  fi
  mkdir -p "$root/.tools"
  rm -rf "$local_dir"
  ln -s "$cache_dir" "$local_dir"
fi
echo "$local_dir/node_modules/.bin/asyncapi"
