#!/usr/bin/env bash
# The policy half of `npm test`: strict check, opa test with a coverage floor, the committed wasm
# fresh against its sources, and the capabilities file really refusing unsupported builtins.
# Prints `opa-tests: N passed, M failed` for the runner to add to its totals.
set -euo pipefail
# shellcheck source=lib-opa.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-opa.sh"
cd "$REPO_ROOT"
MIN_COVERAGE=${BULWARK_MIN_POLICY_COVERAGE:-90}

find_opa
"$OPA" check --strict policies/
out=$("$OPA" test policies/ --format json) || { "$OPA" test policies/ -v >&2 || true; echo "opa-tests: 0 passed, 1 failed"; exit 1; }
pass=$(printf '%s' "$out" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);const f=r.filter(x=>x.fail||x.error).length;console.log(`${r.length-f} ${f}`)})')
set -- $pass
cov=$("$OPA" test policies/ --coverage --format json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).coverage))')
echo "opa test: $1 passed, $2 failed; coverage ${cov}% (floor ${MIN_COVERAGE}%)"
if node -e "process.exit(Number('$cov') >= $MIN_COVERAGE ? 0 : 1)"; then :; else
  echo "error: policy coverage ${cov}% is below ${MIN_COVERAGE}%" >&2
  echo "opa-tests: $1 passed, $(( $2 + 1 )) failed"
  exit 1
fi
bash scripts/check-policy-fresh.sh >&2
bash scripts/check-capabilities.sh >&2
echo "opa-tests: $1 passed, $2 failed"
[ "$2" -eq 0 ]
