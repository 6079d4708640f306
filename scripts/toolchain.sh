#!/usr/bin/env bash
# Installs the pinned external tools Bulwark's build and tests need, when missing:
#   opa v1.22.3 (go install), PostgreSQL (apt: postgresql), Redis (apt: redis-server),
#   Chromium (apt: chromium; the audit report test renders HTML headless).
# Idempotent; prints nothing when everything is present. Exits non-zero with a clear message
# when something is missing and cannot be installed.
set -euo pipefail

OPA_VERSION=1.22.3
installed=()

die() {
  echo "toolchain: error: $*" >&2
  exit 1
}

# --- opa ---------------------------------------------------------------------
opa_ok() { "$1" version 2>/dev/null | grep -qx "Version: $OPA_VERSION"; }

find_opa() {
  local gopath
  if command -v opa >/dev/null 2>&1 && opa_ok opa; then return 0; fi
  if command -v go >/dev/null 2>&1; then
    gopath=$(go env GOPATH 2>/dev/null) || gopath=""
    if [ -n "$gopath" ] && opa_ok "$gopath/bin/opa"; then return 0; fi
  fi
  return 1
}

if ! find_opa; then
  command -v go >/dev/null 2>&1 ||
    die "opa $OPA_VERSION is missing and Go is not installed (needed for: go install github.com/open-policy-agent/opa@v$OPA_VERSION)"
  echo "toolchain: installing opa v$OPA_VERSION with go install (takes a few minutes)..." >&2
  log=$(mktemp)
  if ! go install "github.com/open-policy-agent/opa@v$OPA_VERSION" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "go install github.com/open-policy-agent/opa@v$OPA_VERSION failed (output above)"
  fi
  rm -f "$log"
  find_opa || die "go install finished but $(go env GOPATH)/bin/opa is not opa $OPA_VERSION"
  installed+=("opa $OPA_VERSION ($(go env GOPATH)/bin/opa)")
fi

# --- PostgreSQL, Redis and Chromium ------------------------------------------------------
have_pg() {
  local d
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then return 0; fi
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && return 0
  done
  return 1
}

have_redis() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || [ -x /usr/sbin/redis-server ]
}

have_chromium() {
  command -v chromium >/dev/null 2>&1
}

packages=()
have_pg || packages+=(postgresql)
have_redis || packages+=(redis-server)
have_chromium || packages+=(chromium)

if [ "${#packages[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${packages[*]} and apt-get is not available; install them with your package manager"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    die "missing ${packages[*]}: run this script as root (or with passwordless sudo) to apt-get install them"
  fi
  echo "toolchain: installing ${packages[*]} with apt-get..." >&2
  log=$(mktemp)
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get update failed (output above)"
  fi
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install ${packages[*]} failed (output above)"
  fi
  rm -f "$log"
  have_pg || die "PostgreSQL was installed but pg_ctl/initdb are still not found"
  have_redis || die "redis-server was installed but is still not found"
  have_chromium || die "chromium was installed but is still not on PATH"
  installed+=("${packages[@]}")
fi

if [ "${#installed[@]}" -gt 0 ]; then
  echo "toolchain: installed ${installed[*]}"
fi
