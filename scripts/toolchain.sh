#!/usr/bin/env bash
# Installs the pinned external tools Bulwark's build and tests need, when missing:
#   opa v1.22.3 (go install), helm v4.3.2 (go install) and the deployment schemas (Go modules),
#   PostgreSQL (apt: postgresql), Redis (apt: redis-server),
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

# --- helm and the deployment schemas (scripts/deploy-check.sh) ---------------------------
# BEGIN deploy toolchain: helm v4.3.2 (go install) lints and renders deploy/helm/bulwark; the
# Kubernetes 1.34 OpenAPI schema (k8s.io/kubernetes module, api/openapi-spec/v3), the
# prometheus-operator v1 types and the Compose Specification schema (compose-go/v2) are Go modules
# that deploy/check/validate.mjs reads from the module cache. Reused when present.
HELM_VERSION=4.3.2
DEPLOY_SCHEMA_MODULES=(
  k8s.io/kubernetes@v1.34.4
  github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@v0.95.2
  github.com/compose-spec/compose-go/v2@v2.16.2
)
# A `go install` build has no version stamp (helm version says v4.3): read the module version.
helm_ok() {
  "$1" version --template '{{.Version}}' 2>/dev/null | grep -qx "v$HELM_VERSION" ||
    go version -m "$(command -v "$1")" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" { print $3 }' | grep -qx "v$HELM_VERSION"
}

find_helm() {
  local gopath
  if command -v helm >/dev/null 2>&1 && helm_ok helm; then return 0; fi
  if command -v go >/dev/null 2>&1; then
    gopath=$(go env GOPATH 2>/dev/null) || gopath=""
    if [ -n "$gopath" ] && helm_ok "$gopath/bin/helm"; then return 0; fi
  fi
  return 1
}

if ! find_helm; then
  command -v go >/dev/null 2>&1 ||
    die "helm $HELM_VERSION is missing and Go is not installed (needed for: go install helm.sh/helm/v4/cmd/helm@v$HELM_VERSION)"
  echo "toolchain: installing helm v$HELM_VERSION with go install (takes a few minutes)..." >&2
  log=$(mktemp)
  if ! go install "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "go install helm.sh/helm/v4/cmd/helm@v$HELM_VERSION failed (output above)"
  fi
  rm -f "$log"
  find_helm || die "go install finished but $(go env GOPATH)/bin/helm is not helm v$HELM_VERSION"
  installed+=("helm $HELM_VERSION ($(go env GOPATH)/bin/helm)")
fi

modcache=$(go env GOMODCACHE 2>/dev/null) || modcache=""
for module in "${DEPLOY_SCHEMA_MODULES[@]}"; do
  path=${module%@*}
  # The module cache escapes capital letters (!x); these paths have none.
  if [ -n "$modcache" ] && [ -d "$modcache/$path@${module#*@}" ]; then continue; fi
  log=$(mktemp)
  if ! (cd "$(dirname "$log")" && GO111MODULE=on go mod download "$module") >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "go mod download $module failed (output above)"
  fi
  rm -f "$log"
  installed+=("$module (Go module cache)")
done
# END deploy toolchain

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
# BEGIN haproxy: the load balancer of the three-replica test (test/replicas.test.ts), Debian's package.
have_haproxy() { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; }
have_haproxy || packages+=(haproxy)
# END haproxy
# The MCP Python SDK's venv (scripts/python-sdk.sh) needs CPython >= 3.10 with venv and ensurepip.
have_python_venv() {
  local c
  for c in python3 python3.13 python3.12 python3.11 python3.10; do
    command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && return 0
  done
  return 1
}
have_python_venv || packages+=(python3 python3-venv)

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

# BEGIN node24: Node 24 LTS (npm's node@24, pinned) and isolated-vm 7 built for it, in .toolchain/
# (scripts/node24.sh: prints what it installs; a quick silent check when present). npm test's
# node24 stage runs on it.
bash "$(dirname "$0")/node24.sh" || die "scripts/node24.sh failed (output above)"
# END node24

# BEGIN conformance: the official MCP conformance suite (npm's @modelcontextprotocol/conformance,
# pinned) under Node 22 (npm's node@22; the suite needs fs.globSync) in .toolchain/conformance/
# (scripts/conformance.sh). test/conformance.test.ts runs it against the conformance profile.
bash "$(dirname "$0")/conformance.sh" || die "scripts/conformance.sh failed (output above)"
# END conformance

# BEGIN interop clients: the MCP Python SDK (PyPI's mcp, pinned, in a venv: .toolchain/python-mcp/,
# scripts/python-sdk.sh) and the MCP Inspector CLI (npm's @modelcontextprotocol/inspector, pinned,
# on the Node 24 above: .toolchain/inspector/, scripts/inspector.sh); test/interop-*.test.ts drive
# Bulwark with them in both protocol eras. Quick silent checks when present.
bash "$(dirname "$0")/python-sdk.sh" || die "scripts/python-sdk.sh failed (output above)"
bash "$(dirname "$0")/inspector.sh" || die "scripts/inspector.sh failed (output above)"
# END interop clients

if [ "${#installed[@]}" -gt 0 ]; then
  echo "toolchain: installed ${installed[*]}"
fi
