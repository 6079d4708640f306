#!/usr/bin/env bash
# Static checks of the deployment files (test/deploy.test.ts runs this; so can you):
#   1. helm lint --strict deploy/helm/bulwark with the default values and with each ci/*-values.yaml;
#   2. helm template with the same values sets (Kubernetes 1.34), and every rendered manifest
#      validated strictly against the Kubernetes 1.34 OpenAPI v3 schema (k8s.io/kubernetes module,
#      api/openapi-spec/v3, from the Go module proxy) by deploy/check/validate.mjs; the
#      ServiceMonitor against the prometheus-operator v1 types (pkg/apis/monitoring module);
#   3. compose.yaml: `docker compose config` when the compose plugin is installed, and always
#      against the Compose Specification schema (compose-go/v2 module, schema/compose-spec.json).
#
#   scripts/deploy-check.sh            DEPLOY_CHECK_OUT=DIR keeps the rendered manifests in DIR
#
# helm comes from scripts/toolchain.sh (go install helm.sh/helm/v4/cmd/helm@v4.3.2); the schema
# modules are read from the Go module cache (downloaded once by toolchain.sh or here).
# Exit 0 when everything passed; 1 with the failing step's output otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=4.3.2
K8S_MODULE=k8s.io/kubernetes@v1.34.4
KUBE_VERSION=1.34.4
MONITORING_MODULE=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@v0.95.2
COMPOSE_MODULE=github.com/compose-spec/compose-go/v2@v2.16.2
CHART=deploy/helm/bulwark

die() {
  echo "deploy-check: error: $*" >&2
  exit 1
}
step() { echo "deploy-check: $*"; }

# --- tools -----------------------------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "Go is not installed (helm and the schemas come from the Go module proxy): run scripts/toolchain.sh"
# `go install` builds carry no version stamp (helm version says v4.3): the module version is in the binary.
helm_ok() {
  [ -x "$1" ] || return 1
  [ "$("$1" version --template '{{.Version}}' 2>/dev/null)" = "v$HELM_VERSION" ] ||
    go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" { print $3 }' | grep -qx "v$HELM_VERSION"
}
helm=""
if command -v helm >/dev/null 2>&1 && helm_ok "$(command -v helm)"; then
  helm=$(command -v helm)
elif helm_ok "$(go env GOPATH)/bin/helm"; then
  helm="$(go env GOPATH)/bin/helm"
fi
[ -n "$helm" ] || die "helm v$HELM_VERSION not found (PATH, $(go env GOPATH)/bin): run scripts/toolchain.sh"
[ -f node_modules/ajv/package.json ] && [ -f node_modules/yaml/package.json ] || die "node_modules/ajv or node_modules/yaml missing: run npm ci"

out=${DEPLOY_CHECK_OUT:-}
if [ -z "$out" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

# The directory of a module version in the Go module cache (downloaded when missing).
module_dir() {
  local json dir
  json=$(cd "$out" && GO111MODULE=on go mod download -json "$1" 2>&1) || {
    echo "$json" >&2
    die "go mod download $1 failed"
  }
  dir=$(printf '%s' "$json" | node -e 'let s="";process.stdin.on("data",(c)=>s+=c).on("end",()=>{const j=JSON.parse(s);if(j.Error){console.error(j.Error);process.exit(1)}console.log(j.Dir)})') ||
    die "go mod download $1: no module directory"
  printf '%s' "$dir"
}
spec=$(module_dir "$K8S_MODULE")/api/openapi-spec/v3
monitoring=$(module_dir "$MONITORING_MODULE")
compose_schema=$(module_dir "$COMPOSE_MODULE")/schema/compose-spec.json
[ -d "$spec" ] || die "$spec is missing"
[ -f "$compose_schema" ] || die "$compose_schema is missing"

# --- 1 and 2: the chart ----------------------------------------------------------------------
value_sets=(default)
for f in "$CHART"/ci/*-values.yaml; do value_sets+=("$f"); done
rendered=()
for v in "${value_sets[@]}"; do
  args=()
  name=default
  if [ "$v" != default ]; then
    args=(-f "$v")
    name=$(basename "$v" -values.yaml)
  fi
  step "helm lint --strict $CHART ${args[*]}"
  if ! lint=$("$helm" lint --strict "$CHART" "${args[@]}" 2>&1); then
    echo "$lint" >&2
    die "helm lint failed ($name)"
  fi
  step "helm template ($name values, Kubernetes $KUBE_VERSION) -> $out/$name.yaml"
  if ! "$helm" template bulwark "$CHART" --namespace mcp --kube-version "$KUBE_VERSION" "${args[@]}" >"$out/$name.yaml" 2>"$out/$name.err"; then
    cat "$out/$name.err" >&2
    die "helm template failed ($name)"
  fi
  rendered+=("$out/$name.yaml")
done
step "validating ${#rendered[@]} renderings against the Kubernetes $KUBE_VERSION OpenAPI schema ($K8S_MODULE)"
node deploy/check/validate.mjs k8s --spec "$spec" --monitoring "$monitoring" "${rendered[@]}" || die "rendered manifests do not validate (above)"

# --- 3: compose ------------------------------------------------------------------------------
# Placeholder secrets: compose.yaml refuses to interpolate without them (${VAR:?…}).
cat >"$out/compose.env" <<'EOF'
POSTGRES_PASSWORD=check
BULWARK_APP_PASSWORD=check
BULWARK_OPERATOR_PASSWORD=check
BULWARK_READER_PASSWORD=check
REDIS_PASSWORD=check
GRAFANA_ADMIN_PASSWORD=check
BULWARK_REQUEST_STATE_KEY=check-check-check-check-check-check
EOF
if docker compose version >/dev/null 2>&1; then
  step "docker compose config -q"
  docker compose -f compose.yaml --env-file "$out/compose.env" config -q || die "docker compose config refused compose.yaml"
else
  step "docker compose is not installed here: compose.yaml is checked against the Compose Specification schema only"
fi
step "validating compose.yaml against the Compose Specification ($COMPOSE_MODULE)"
node deploy/check/validate.mjs compose --schema "$compose_schema" --env "$out/compose.env" compose.yaml || die "compose.yaml does not validate (above)"

step "ok"
