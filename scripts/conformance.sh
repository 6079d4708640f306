#!/usr/bin/env bash
# The official MCP conformance suite, pinned, in the project-local folder .toolchain/conformance/:
#
#   .toolchain/conformance/node_modules/.bin/node           Node NODE22_VERSION (npm's node@22 package)
#   .toolchain/conformance/node_modules/.bin/conformance    @modelcontextprotocol/conformance CONFORMANCE_VERSION
#
# Why Node 22 beside the machine's Node 20: the suite's bundle imports fs.globSync (Node >= 22) and
# dies at load on 20. npm's `node` package brings the binary from the npm registry, like the
# other pinned tools. test/conformance.test.ts runs the suite with exactly this node against
# `bulwark serve --http 127.0.0.1:0 --profile conformance`, for both requirement sets.
#
# Usage: scripts/conformance.sh            install when missing (quick no-op when present), print nothing
#        scripts/conformance.sh --print    also print the folder (.toolchain/conformance) on stdout
# Needs the npm registry the first time; then works offline (a machine-wide copy in
# ~/.cache/bulwark-toolchain, as scripts/node24.sh keeps, lets a fresh clone copy instead of
# downloading). Exits non-zero with a message when something cannot be installed.
set -euo pipefail

NODE22_VERSION=22.23.3
CONFORMANCE_VERSION=0.2.0-alpha.12

root=$(cd "$(dirname "$0")/.." && pwd)
tc="$root/.toolchain"
dir="$tc/conformance"
node_bin="$dir/node_modules/.bin/node"
suite_bin="$dir/node_modules/.bin/conformance"

die() {
  echo "conformance: error: $*" >&2
  exit 1
}

# shellcheck source=scripts/toolchain-lib.sh
. "$(dirname "$0")/toolchain-lib.sh"
cache_name="conformance-$CONFORMANCE_VERSION-node-$NODE22_VERSION"

# The pinned node runs and the pinned suite loads under it (the whole suite is one bundle: --version loads it).
suite_ok() {
  [ -x "$node_bin" ] && [ -f "$suite_bin" ] &&
    [ "$("$node_bin" --version 2>/dev/null)" = "v$NODE22_VERSION" ] &&
    [ "$("$node_bin" "$suite_bin" --version 2>/dev/null)" = "$CONFORMANCE_VERSION" ]
}

if ! suite_ok && from_cache "$cache_name" "$dir" && ! suite_ok; then rm -rf "$dir"; fi
if ! suite_ok; then
  command -v npm >/dev/null 2>&1 || die "npm is needed to install node@$NODE22_VERSION and @modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
  echo "conformance: installing node@$NODE22_VERSION and @modelcontextprotocol/conformance@$CONFORMANCE_VERSION from the npm registry into .toolchain/conformance..." >&2
  mkdir -p "$tc"
  stage=$(mktemp -d "$tc/.conformance.XXXXXX")
  log=$(mktemp)
  # A package.json of its own, so npm installs here and not into the project (exact versions, no ranges).
  printf '{"name":"bulwark-conformance-toolchain","private":true}\n' >"$stage/package.json"
  # node@X's preinstall fetches node-<os>-<arch>@X and links node_modules/.bin/node to it.
  if ! (cd "$stage" && npm install --no-audit --no-fund --save-exact "node@$NODE22_VERSION" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION") >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -rf "$stage" "$log"
    die "npm install node@$NODE22_VERSION @modelcontextprotocol/conformance@$CONFORMANCE_VERSION failed (output above)"
  fi
  rm -f "$log"
  rm -rf "$dir"
  mv "$stage" "$dir"
  suite_ok || die "installed, but $suite_bin does not run as conformance $CONFORMANCE_VERSION under Node $NODE22_VERSION"
fi
to_cache "$dir" "$cache_name"

if [ "${1:-}" = "--print" ]; then echo "$dir"; fi
