#!/usr/bin/env bash
# Fails (exit 1) when the committed policies/policy.wasm is stale against the Rego sources
# or the capabilities file. Cheap check first (source hash, wasm hash); then, when opa is
# available, a rebuild: identical bytes pass; different bytes pass only if the rebuilt and
# the committed wasm decide every shared case identically (needs node_modules).
# Usage: scripts/check-policy-fresh.sh [--no-rebuild]
set -euo pipefail
# shellcheck source=lib-opa.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-opa.sh"
cd "$REPO_ROOT"

stale() {
  echo "error: policies/policy.wasm is stale: $1" >&2
  echo "       rebuild with: bash scripts/build-policy.sh  (then commit policies/policy.wasm*)" >&2
  exit 1
}

for f in policies/policy.wasm policies/policy.wasm.sha256 policies/policy.source.sha256; do
  [ -f "$f" ] || stale "$f is missing"
done

want_src=$(cat policies/policy.source.sha256)
have_src=$(policy_source_hash)
[ "$want_src" = "$have_src" ] ||
  stale "Rego sources or capabilities changed (source hash $have_src, recorded $want_src)"

want_wasm=$(cat policies/policy.wasm.sha256)
have_wasm=$(sha256sum policies/policy.wasm | cut -d' ' -f1)
[ "$want_wasm" = "$have_wasm" ] ||
  stale "policy.wasm does not match policies/policy.wasm.sha256 (edited by hand?)"

if [ "${1:-}" = "--no-rebuild" ]; then
  echo "policy fresh (source hash)"
  exit 0
fi
if ! find_opa 2>/dev/null; then
  echo "policy fresh (source hash; opa $OPA_VERSION not installed, rebuild skipped)"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build_wasm "$tmp" || stale "the policy does not build any more"
if cmp -s "$tmp/policy.wasm" policies/policy.wasm; then
  echo "policy fresh (source hash; rebuild is byte-identical)"
  exit 0
fi
if [ ! -d node_modules/@open-policy-agent/opa-wasm ]; then
  stale "a rebuild differs byte-wise and node_modules is missing, so behaviour cannot be compared"
fi
if ! node scripts/policy-cases.mjs --compare "$tmp/policy.wasm" > "$tmp/cases.txt" 2>&1; then
  cat "$tmp/cases.txt" >&2
  stale "the rebuilt policy decides the shared cases differently"
fi
echo "policy fresh (source hash; rebuild differs byte-wise but decides all shared cases identically: $(tail -1 "$tmp/cases.txt"))"
