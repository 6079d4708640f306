# Sourced by the policy scripts: find the pinned opa binary (sets $OPA) and the repo root.
# shellcheck shell=bash
OPA_VERSION=1.22.3
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

find_opa() {
  local c gopath
  local -a candidates=()
  [ -n "${OPA:-}" ] && candidates+=("$OPA")
  candidates+=(opa)
  if command -v go >/dev/null 2>&1; then
    gopath=$(go env GOPATH 2>/dev/null) && candidates+=("$gopath/bin/opa")
  fi
  candidates+=("$HOME/go/bin/opa")
  for c in "${candidates[@]}"; do
    if "$c" version 2>/dev/null | grep -qx "Version: $OPA_VERSION"; then
      OPA=$c
      return 0
    fi
  done
  echo "error: opa $OPA_VERSION not found (tried: ${candidates[*]}); run: bash scripts/toolchain.sh" >&2
  return 1
}

# sha256 over the sorted non-test policy sources and the capabilities file (paths are
# part of the hash, so a rename is a change too). Run from $REPO_ROOT.
policy_source_hash() {
  local f
  {
    for f in $(cd "$REPO_ROOT" && find policies -maxdepth 1 -name '*.rego' ! -name '*_test.rego' | LC_ALL=C sort) policies/capabilities.json; do
      printf '%s\n' "$f"
      sha256sum < "$REPO_ROOT/$f" | cut -d' ' -f1
    done
  } | sha256sum | cut -d' ' -f1
}

# build_wasm OUTDIR: compile the non-test policy sources to OUTDIR/policy.wasm.
build_wasm() {
  local out=$1 tmp
  local -a sources
  mapfile -t sources < <(cd "$REPO_ROOT" && find policies -maxdepth 1 -name '*.rego' ! -name '*_test.rego' | LC_ALL=C sort)
  tmp=$(mktemp -d)
  (cd "$REPO_ROOT" && "$OPA" build -t wasm \
      -e bulwark/authz/decision -e bulwark/authz/visible_tools \
      --capabilities policies/capabilities.json \
      -o "$tmp/bundle.tar.gz" "${sources[@]}") || { rm -rf "$tmp"; return 1; }
  tar -xzf "$tmp/bundle.tar.gz" -C "$tmp" /policy.wasm 2>/dev/null || tar -xzf "$tmp/bundle.tar.gz" -C "$tmp" policy.wasm
  mkdir -p "$out"
  mv "$tmp/policy.wasm" "$out/policy.wasm"
  rm -rf "$tmp"
}
