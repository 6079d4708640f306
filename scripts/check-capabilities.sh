#!/usr/bin/env bash
# Negative check: policies/capabilities.json must make `opa build -t wasm` reject impure or
# unsupported builtins, and accept the pure baseline. Also checks the file is up to date.
set -euo pipefail
# shellcheck source=lib-opa.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-opa.sh"
find_opa
cd "$REPO_ROOT"
node scripts/gen-capabilities.mjs --check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

try_build() { # name body -> exit status of opa build
  mkdir -p "$tmp/$1"
  printf 'package probe\n\nresult := %s\n' "$2" > "$tmp/$1/probe.rego"
  "$OPA" build -t wasm -e probe/result --capabilities policies/capabilities.json \
    -o "$tmp/$1/bundle.tar.gz" "$tmp/$1/probe.rego" > "$tmp/$1/out.txt" 2>&1
}

if ! try_build pure 'sprintf("%s", [lower(input.x)])'; then
  echo "FAIL: a pure policy did not build with the capabilities file:" >&2
  cat "$tmp/pure/out.txt" >&2
  status=1
fi

while IFS='|' read -r name body; do
  if try_build "$name" "$body"; then
    echo "FAIL: policy using $name built with policies/capabilities.json (it must not)" >&2
    status=1
  elif ! grep -q 'undefined function' "$tmp/$name/out.txt"; then
    echo "FAIL: policy using $name failed for an unexpected reason:" >&2
    cat "$tmp/$name/out.txt" >&2
    status=1
  fi
done <<'PROBES'
time.now_ns|time.now_ns()
http.send|http.send({"method": "GET", "url": "http://127.0.0.1/"})
io.jwt.decode|io.jwt.decode(input.token)
crypto.sha256|crypto.sha256("x")
rand.intn|rand.intn("x", 10)
uuid.rfc4122|uuid.rfc4122("x")
opa.runtime|opa.runtime()
net.lookup_ip_addr|net.lookup_ip_addr("localhost")
PROBES

if [ "$status" -eq 0 ]; then
  echo "capabilities ok: pure policy builds; time/http/jwt/crypto/rand/uuid/runtime/dns builtins are rejected"
fi
exit "$status"
