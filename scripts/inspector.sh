#!/usr/bin/env bash
# The MCP Inspector's CLI, as a test tool: test/interop-inspector.test.ts runs
# `inspector --cli … --method tools/list|tools/call --protocol-era legacy|modern` against Bulwark
# over HTTP and stdio. Installed from the npm registry into the project-local folder
# .toolchain/inspector/ (gitignored); never a dependency of the package:
#
#   .toolchain/inspector/node_modules/@modelcontextprotocol/inspector   pinned INSPECTOR_VERSION
#
# The Inspector 2.x requires Node >= 22.19: it runs on the Node 24 that scripts/node24.sh installs
# (run that first; scripts/toolchain.sh does). Its install scripts are not run: the one it has
# (postinstall: install-clients.mjs) only serves a source checkout and no-ops under node_modules.
# A machine-wide copy (keyed by version) lets a fresh clone on the same machine copy it instead of
# downloading it again; every copy is checked as a fresh install is.
#
# Usage: scripts/inspector.sh            install when missing (quick no-op when present), print nothing
#        scripts/inspector.sh --print    also print the launcher's path (run it with Node 24) on stdout
# Needs the npm registry the first time (or npm's own cache); then works offline.
set -euo pipefail

INSPECTOR_VERSION=2.12.0

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.toolchain/inspector"
pkg="$dir/node_modules/@modelcontextprotocol/inspector"
launcher="$pkg/clients/launcher/build/index.js"
node24="$root/.toolchain/node24/bin/node"

die() {
  echo "inspector: error: $*" >&2
  exit 1
}

# shellcheck source=scripts/toolchain-lib.sh
. "$(dirname "$0")/toolchain-lib.sh"

[ -x "$node24" ] || die "Node 24 is missing at $node24: run scripts/node24.sh first (the Inspector needs Node >= 22.19)"

# The pinned version, and its CLI starts on Node 24 and prints that version.
inspector_ok() {
  [ -f "$launcher" ] && [ "$("$node24" -p "require('$pkg/package.json').version" 2>/dev/null)" = "$INSPECTOR_VERSION" ] &&
    "$node24" "$launcher" --cli --version 2>/dev/null | grep -q "$INSPECTOR_VERSION"
}

if ! inspector_ok && from_cache "inspector-$INSPECTOR_VERSION" "$dir"; then
  inspector_ok || rm -rf "$dir"
fi
if ! inspector_ok; then
  command -v npm >/dev/null 2>&1 || die "npm is needed to install @modelcontextprotocol/inspector@$INSPECTOR_VERSION"
  echo "inspector: installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION from the npm registry into .toolchain/inspector..." >&2
  mkdir -p "$root/.toolchain"
  stage=$(mktemp -d "$root/.toolchain/.inspector.XXXXXX")
  # Under Node 24 (first on PATH) so npm sees the engine the package asks for.
  run_logged env PATH="$(dirname "$node24"):$PATH" npm install --prefix "$stage" --prefer-offline --ignore-scripts \
    --no-audit --no-fund --save-exact "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" ||
    { rm -rf "$stage"; die "npm install @modelcontextprotocol/inspector@$INSPECTOR_VERSION failed (output above)"; }
  rm -rf "$dir"
  mv "$stage" "$dir"
  inspector_ok || die "@modelcontextprotocol/inspector@$INSPECTOR_VERSION was installed but its CLI does not start on $node24"
fi
to_cache "$dir" "inspector-$INSPECTOR_VERSION"

if [ "${1:-}" = "--print" ]; then echo "$launcher"; fi
