#!/usr/bin/env bash
# Node 24 LTS for Bulwark, next to the machine's Node 20, in the project-local folder .toolchain/:
#
#   .toolchain/node24/bin/node          node@NODE24_VERSION from the npm registry's `node` package
#   .toolchain/node24/include/node      its headers (node-gyp builds against these, not the machine's)
#   .toolchain/isolated-vm/abi-<N>/node_modules/isolated-vm
#                                       isolated-vm ISOLATED_VM_24 compiled for that Node's ABI
#                                       (process.versions.modules; 137 for Node 24)
#
# Why a side folder and not package-lock: isolated-vm is the one addon bound to a Node ABI (argon2
# is N-API, libpg-query and PGlite are wasm). 5.x, the lock's, is the Node 20 line and does not
# build on 24; 7.x requires Node >= 24. The lock keeps 5.x so `npm ci` on Node 20 is what it was;
# the JavaScript worker loads isolated-vm through sandbox/js/isolated-vm.ts, which takes the
# abi-<N> build when one exists for the running Node (src/core/isolated-vm-location.ts).
# The Dockerfile's deps stage pins the same two versions (test/node24.test.ts checks they agree).
#
# Usage: scripts/node24.sh            install when missing (quick no-op when present), print nothing
#        scripts/node24.sh --print    also print the path of the node binary on stdout
# Needs the npm registry the first time; then works offline. Exits non-zero with a message when
# something cannot be installed.
set -euo pipefail

NODE24_VERSION=24.21.0
ISOLATED_VM_24=7.0.2

root=$(cd "$(dirname "$0")/.." && pwd)
tc="$root/.toolchain"
node_dir="$tc/node24"
node_bin="$node_dir/bin/node"

die() {
  echo "node24: error: $*" >&2
  exit 1
}

# The machine-wide cache (from_cache, to_cache) and run_logged; copies are checked by node_ok, ivm_ok.
# shellcheck source=scripts/toolchain-lib.sh
. "$(dirname "$0")/toolchain-lib.sh"

# --- node@24 -----------------------------------------------------------------------------
node_ok() { [ -x "$node_bin" ] && [ "$("$node_bin" --version 2>/dev/null)" = "v$NODE24_VERSION" ] && [ -f "$node_dir/include/node/node.h" ]; }

if ! node_ok && from_cache "node-$NODE24_VERSION" "$node_dir" && ! node_ok; then rm -rf "$node_dir"; fi
if ! node_ok; then
  command -v npm >/dev/null 2>&1 || die "npm is needed to install node@$NODE24_VERSION"
  echo "node24: installing node@$NODE24_VERSION from the npm registry into .toolchain/node24..." >&2
  mkdir -p "$tc"
  stage=$(mktemp -d "$tc/.node24.XXXXXX")
  # node@X's preinstall fetches node-<os>-<arch>@X: bin/node and include/node (the headers).
  run_logged npm install --prefix "$stage/pkg" --no-save --no-package-lock --no-audit --no-fund "node@$NODE24_VERSION" ||
    { rm -rf "$stage"; die "npm install node@$NODE24_VERSION failed (output above)"; }
  arch_pkg="$stage/pkg/node_modules/node/node_modules/node-$(node -p 'process.platform + "-" + process.arch')"
  [ -n "$arch_pkg" ] && [ -x "$arch_pkg/bin/node" ] && [ -d "$arch_pkg/include/node" ] ||
    { rm -rf "$stage"; die "node@$NODE24_VERSION installed no platform package with bin/node and include/node"; }
  mkdir -p "$stage/out/bin"
  cp "$arch_pkg/bin/node" "$stage/out/bin/node"
  cp -r "$arch_pkg/include" "$stage/out/include"
  rm -rf "$node_dir"
  mv "$stage/out" "$node_dir"
  rm -rf "$stage"
  node_ok || die "$node_bin is not Node $NODE24_VERSION after install"
fi
to_cache "$node_dir" "node-$NODE24_VERSION"

# --- isolated-vm for Node 24's ABI -------------------------------------------------------
abi=$("$node_bin" -p process.versions.modules)
ivm_prefix="$tc/isolated-vm/abi-$abi"
ivm_dir="$ivm_prefix/node_modules/isolated-vm"

# Loads it and runs one isolate, as the JavaScript worker does (--no-node-snapshot).
ivm_ok() {
  [ -f "$ivm_dir/package.json" ] &&
    [ "$("$node_bin" -p "require('$ivm_dir/package.json').version" 2>/dev/null)" = "$ISOLATED_VM_24" ] &&
    "$node_bin" --no-node-snapshot -e "const ivm=require('$ivm_dir');const i=new ivm.Isolate({memoryLimit:8});if(i.compileScriptSync('6*7').runSync(i.createContextSync())!==42)process.exit(1);" >/dev/null 2>&1
}

if ! ivm_ok && from_cache "isolated-vm-$ISOLATED_VM_24-node-$NODE24_VERSION" "$ivm_prefix" && ! ivm_ok; then rm -rf "$ivm_prefix"; fi
if ! ivm_ok; then
  echo "node24: building isolated-vm@$ISOLATED_VM_24 for Node $NODE24_VERSION (ABI $abi; a few minutes)..." >&2
  stage=$(mktemp -d "$tc/.ivm.XXXXXX")
  # npm runs under Node 24 (first on PATH), and node-gyp builds against Node 24's headers:
  # the machine's npm settings point nodedir at Node 20's.
  run_logged env PATH="$node_dir/bin:$PATH" npm_config_nodedir="$node_dir" \
    npm install --prefix "$stage" --no-save --no-package-lock --no-audit --no-fund \
    --build-from-source "isolated-vm@$ISOLATED_VM_24" ||
    { rm -rf "$stage"; die "building isolated-vm@$ISOLATED_VM_24 for Node $NODE24_VERSION failed (output above)"; }
  rm -rf "$stage/node_modules/isolated-vm/build/Release/obj.target" "$stage/node_modules/isolated-vm/build/Release/.deps"
  rm -rf "$ivm_prefix"
  mkdir -p "$(dirname "$ivm_prefix")"
  mv "$stage" "$ivm_prefix"
  ivm_ok || die "isolated-vm@$ISOLATED_VM_24 was built but does not run an isolate on Node $NODE24_VERSION"
fi
to_cache "$ivm_prefix" "isolated-vm-$ISOLATED_VM_24-node-$NODE24_VERSION"

if [ "${1:-}" = "--print" ]; then echo "$node_bin"; fi
